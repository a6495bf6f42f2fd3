#!/usr/bin/env python3
"""Render the Duckiebot forward camera while the robot drives along the right lane.

Runs inside the isolated simulator venv (``.venv-sim``, see ``setup_sim_env.sh``)
under a virtual X server::

    xvfb-run -a .venv-sim/bin/python tools/duckietown/render.py \
        --map udem1 --frames 250 --seed 3 --out data/duckietown/raw/example

How the robot moves (no physics: ``Simulator.step()`` is broken with the pinned
versions, so the pose is set directly and ``render_obs()`` is called):

* The lane network is the set of Bezier lane-centre curves of every drivable tile
  (``tile["curves"]``; the same curves ``Simulator.closest_curve_point`` uses).
  Curve B follows curve A when B starts where A ends, pointing the same way.
* A start pose is drawn from the seeded RNG on a random lane curve and accepted
  only when the simulator's own spawn checks pass (drivable under both wheels
  with a 1.3 safety factor, no collision, not too close to an object).
* The robot advances along the lane centre by ``speed / fps`` metres per frame.
  At intersections the next curve is drawn at random (seeded) among those whose
  whole length is a valid, collision-free pose.  A dead end (or no valid branch)
  starts a new *segment* from a fresh seeded start pose; ``meta.json`` records
  the segment index of every frame.
* A smooth, seeded wobble is added: a lateral offset (two sinusoids, <= ~3.5 cm)
  with the matching heading change, plus a small heading oscillation (<= ~2.5 deg).
  Each frame's actual pose is checked with the simulator's ``_valid_pose``; the
  wobble is shrunk for a frame whose pose would not be valid.

Output: ``OUT/frame_000000.png ...`` (lossless PNG, RGB as rendered) and
``OUT/meta.json`` (fields documented in tools/duckietown/README.md).
Everything is written to ``OUT.partial`` first and renamed to ``OUT`` at the end,
so an existing ``OUT`` with a ``meta.json`` is always complete.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import sys
import time

# One CPU core: Mesa's llvmpipe software rasteriser and the BLAS libraries
# otherwise start one thread per core.  Must be set before GL/numpy load.
os.environ.setdefault('LP_NUM_THREADS', '1')
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_v, '1')

import numpy as np  # noqa: E402

FORMAT_VERSION = 1
SAMPLE_DS = 0.002  # metres between samples of the lane-centre polyline


def _pkg_versions() -> dict:
    from importlib import metadata

    out = {'python': platform.python_version()}
    for name in (
        'duckietown-gym-daffy',
        'duckietown-world-daffy',
        'numpy',
        'pyglet',
        'opencv-python',
        'scipy',
        'PyOpenGL',
        'gym',
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _gl_info() -> dict:
    try:
        import ctypes

        from pyglet import gl

        def gs(e):
            p = gl.glGetString(e)
            return ctypes.cast(p, ctypes.c_char_p).value.decode(errors='replace') if p else None

        return {'vendor': gs(gl.GL_VENDOR), 'renderer': gs(gl.GL_RENDERER),
                'version': gs(gl.GL_VERSION)}
    except Exception as e:  # pragma: no cover - informational only
        return {'error': repr(e)}


def heading_of(tangent_xz: np.ndarray) -> float:
    """Return the simulator angle for a direction (x, z): dir_vec(angle) = (cos a, -sin a)."""
    return math.atan2(-tangent_xz[1], tangent_xz[0])


class LaneGraph:
    """Lane-centre Bezier curves of a loaded map and how they connect."""

    def __init__(self, env):
        from gym_duckietown.graphics import bezier_point, bezier_tangent

        self._bp = bezier_point
        self._bt = bezier_tangent
        self.env = env
        self.tile_size = float(env.road_tile_size)
        self.cps = []  # (4, 3) control points, world coordinates
        self.tile = []  # (i, j) of the tile holding the curve
        for tile in env.drivable_tiles:
            for c in np.asarray(tile['curves'], dtype=np.float64):
                self.cps.append(c)
                self.tile.append(tuple(tile['coords']))
        n = len(self.cps)
        if n == 0:
            raise RuntimeError('map has no drivable lane curves')
        self.samples = [self._sample(c) for c in self.cps]
        starts = np.array([s[0][0] for s in self.samples])
        ends = np.array([s[0][-1] for s in self.samples])
        t0 = np.array([self._unit(s[0][1] - s[0][0]) for s in self.samples])
        t1 = np.array([self._unit(s[0][-1] - s[0][-2]) for s in self.samples])
        tol = 0.03 * self.tile_size
        self.succ = []
        for k in range(n):
            d = np.linalg.norm(starts - ends[k], axis=1)
            ok = (d < tol) & (t0 @ t1[k] > 0.7)
            self.succ.append([m for m in np.nonzero(ok)[0] if self.tile[m] != self.tile[k]])
        self._valid_cache: dict = {}

    @staticmethod
    def _unit(v):
        return v / max(np.linalg.norm(v), 1e-12)

    def _sample(self, cps):
        """Resample a curve at ~uniform arc length; returns (points (N,2) xz, lengths)."""
        ts = np.linspace(0.0, 1.0, 400)
        pts = np.array([self._bp(cps, t) for t in ts])[:, [0, 2]]
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        n = max(int(math.ceil(s[-1] / SAMPLE_DS)), 2)
        su = np.linspace(0.0, s[-1], n + 1)
        xs = np.interp(su, s, pts[:, 0])
        zs = np.interp(su, s, pts[:, 1])
        return np.stack([xs, zs], axis=1), su

    def length(self, k):
        return float(self.samples[k][1][-1])

    def pose_on(self, k, frac):
        pts, s = self.samples[k]
        i = int(round(frac * (len(pts) - 1)))
        i = min(max(i, 1), len(pts) - 1)
        return pts[i], heading_of(pts[i] - pts[i - 1])

    def curve_valid(self, k) -> bool:
        """Tell whether the whole curve is a valid pose for the robot (drivable, no collision)."""
        if k not in self._valid_cache:
            ok = True
            for frac in np.linspace(0.02, 0.98, 15):
                p, a = self.pose_on(k, frac)
                if not self.env._valid_pose(np.array([p[0], 0.0, p[1]]), a, safety_factor=1.0):
                    ok = False
                    break
            self._valid_cache[k] = ok
        return self._valid_cache[k]

    def valid_successors(self, k):
        return [m for m in self.succ[k] if self.curve_valid(m)]


class Route:
    """A growing polyline (lane centre) the robot follows, built from lane curves."""

    def __init__(self, graph: LaneGraph, rng: np.random.Generator, first_curve: int,
                 start_frac: float):
        self.g = graph
        self.rng = rng
        pts, s = graph.samples[first_curve]
        i0 = int(round(start_frac * (len(pts) - 1)))
        self.pts = [pts[i0:]]
        self.s = [s[i0:] - s[i0]]
        self.curves = [int(first_curve)]
        self.end_s = float(self.s[-1][-1])
        self.dead_end = False
        self._flat = None

    def extend_to(self, s_needed: float) -> bool:
        """Append curves until the route is at least s_needed long; False at a dead end."""
        while self.end_s < s_needed:
            if self.dead_end:
                return False
            options = self.g.valid_successors(self.curves[-1])
            if not options:
                self.dead_end = True
                return False
            nxt = int(options[self.rng.integers(len(options))])
            pts, s = self.g.samples[nxt]
            self.pts.append(pts[1:])
            self.s.append(s[1:] + self.end_s)
            self.curves.append(nxt)
            self.end_s = float(self.s[-1][-1])
            self._flat = None
        return True

    def at(self, s: float):
        """Point (x, z) and heading of the lane centre at arc length s."""
        if self._flat is None:
            self._flat = (np.concatenate(self.pts), np.concatenate(self.s))
        pts, ss = self._flat
        i = int(np.searchsorted(ss, s))
        i = min(max(i, 1), len(ss) - 1)
        w = (s - ss[i - 1]) / max(ss[i] - ss[i - 1], 1e-12)
        p = pts[i - 1] * (1 - w) + pts[i] * w
        # heading from a chord of ~2 cm for smoothness
        j0 = int(np.searchsorted(ss, s - 0.01))
        j1 = int(np.searchsorted(ss, s + 0.01))
        j0 = min(max(j0, 0), len(ss) - 2)
        j1 = min(max(j1, j0 + 1), len(ss) - 1)
        return p, heading_of(pts[j1] - pts[j0])

    def curve_at(self, s: float) -> int:
        for k, seg in zip(self.curves, self.s):
            if s <= seg[-1]:
                return k
        return self.curves[-1]


class Wobble:
    """Smooth, seeded deviation from the lane centre: lateral offset d(t), extra yaw."""

    def __init__(self, rng: np.random.Generator, scale: float = 1.0):
        self.scale = scale
        self.a = [rng.uniform(0.010, 0.022) * scale, rng.uniform(0.003, 0.008) * scale]
        self.f = [rng.uniform(0.07, 0.18), rng.uniform(0.25, 0.55)]
        self.ph = [rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)]
        self.yaw_a = math.radians(rng.uniform(0.8, 2.5)) * scale
        self.yaw_f = rng.uniform(0.2, 0.6)
        self.yaw_ph = rng.uniform(0, 2 * math.pi)

    def offset(self, t):
        return sum(a * math.sin(2 * math.pi * f * t + p)
                   for a, f, p in zip(self.a, self.f, self.ph))

    def d_offset(self, t):
        return sum(a * 2 * math.pi * f * math.cos(2 * math.pi * f * t + p)
                   for a, f, p in zip(self.a, self.f, self.ph))

    def yaw(self, t):
        return self.yaw_a * math.sin(2 * math.pi * self.yaw_f * t + self.yaw_ph)

    def as_dict(self):
        return {
            'lateral_amp_m': self.a,
            'lateral_freq_hz': self.f,
            'lateral_phase': self.ph,
            'yaw_amp_rad': self.yaw_a,
            'yaw_freq_hz': self.yaw_f,
            'yaw_phase': self.yaw_ph,
        }


def pick_start(env, graph: LaneGraph, rng: np.random.Generator, min_len: float,
               max_tries: int = 5000):
    """Seeded random valid start pose on a lane curve (same checks as Simulator.reset)."""
    n = len(graph.cps)
    weights = np.array([graph.length(k) for k in range(n)])
    weights = weights / weights.sum()
    for _ in range(max_tries):
        k = int(rng.choice(n, p=weights))
        frac = float(rng.uniform(0.0, 0.9))
        p, a = graph.pose_on(k, frac)
        pos = np.array([p[0], 0.0, p[1]])
        if env._inconvenient_spawn(pos):
            continue
        if not env._valid_pose(pos, a, safety_factor=1.3):
            continue
        if not graph.curve_valid(k):
            continue
        route = Route(graph, rng, k, frac)
        # reject starts that run into a dead end almost immediately
        if not route.extend_to(min_len) and route.end_s < min_len:
            continue
        return route, k, frac
    raise RuntimeError('could not find a valid start pose')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--map', default='udem1')
    ap.add_argument('--frames', type=int, default=100)
    ap.add_argument('--fps', type=float, default=15.0)
    ap.add_argument('--speed', type=float, default=0.3, help='m/s along the lane')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--domain-rand', action='store_true',
                    help='randomise lighting/textures/camera (gym domain_rand)')
    ap.add_argument(
        '--dr-every',
        type=int,
        default=0,
        help='with --domain-rand: draw new randomisation every N frames (0: once per sequence)',
    )
    ap.add_argument('--width', type=int, default=640)
    ap.add_argument('--height', type=int, default=480)
    ap.add_argument('--wobble', type=float, default=1.0,
                    help='scale of the lateral/yaw wobble (0 = centred)')
    ap.add_argument('--distortion', action='store_true',
                    help='gym fisheye distortion (off by default)')
    ap.add_argument('--png-compression', type=int, default=3,
                    help='PNG zlib level 0-9 (lossless either way)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--overwrite', action='store_true')
    args = ap.parse_args(argv)

    out = os.path.abspath(args.out)
    if os.path.exists(os.path.join(out, 'meta.json')) and not args.overwrite:
        print(f'[render] {out} already complete (use --overwrite)')
        return 0
    tmp = out + '.partial'
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)

    import cv2

    import contextlib
    import io
    import logging

    # The gym/duckietown imports print banners (gym deprecation notice, pyglet options).
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from gym_duckietown.simulator import NotInLane, Simulator
    for name in ('gym-duckietown', 'duckietown_world', 'gym_duckietown'):
        logging.getLogger(name).setLevel(logging.WARNING)

    t_start = time.time()
    env = Simulator(
        map_name=args.map,
        domain_rand=args.domain_rand,
        camera_width=args.width,
        camera_height=args.height,
        seed=args.seed,
        max_steps=10**9,
        distortion=args.distortion,
        frame_rate=args.fps,
    )
    env.reset()
    t_init = time.time() - t_start
    gl = _gl_info()

    rng = np.random.default_rng([args.seed, 0xD0C])
    graph = LaneGraph(env)
    ds = args.speed / args.fps
    lookahead = 0.05
    wobble = Wobble(rng, args.wobble)
    route, k0, frac0 = pick_start(env, graph, rng, min_len=ds * args.frames + lookahead)
    segments = [{'first_frame': 0, 'start_curve': k0, 'start_frac': frac0, 'reason': 'start'}]
    seg_idx, s, t_seg = 0, 0.0, 0.0

    frames = []
    n_shrunk = 0
    n_invalid = 0
    dr_epoch = 0
    enc = [cv2.IMWRITE_PNG_COMPRESSION, int(args.png_compression)]
    for n in range(args.frames):
        if args.domain_rand and args.dr_every > 0 and n > 0 and n % args.dr_every == 0:
            # draws new lighting/texture/camera randomisation (pose is overwritten below)
            env.reset()
            dr_epoch += 1
        if not route.extend_to(s + lookahead):
            # dead end: start a new segment from a fresh seeded start pose
            route, k0, frac0 = pick_start(env, graph, rng,
                                          min_len=ds * (args.frames - n) + lookahead)
            seg_idx += 1
            s, t_seg = 0.0, 0.0
            segments.append({'first_frame': n, 'start_curve': k0, 'start_frac': frac0,
                             'reason': 'dead_end'})
        p, h = route.at(s)
        t = n / args.fps
        scale = 1.0
        for _ in range(6):
            d = wobble.offset(t) * scale
            # heading follows the lateral motion (d' / v) plus a small extra yaw oscillation
            yaw = math.atan2(wobble.d_offset(t) * scale, args.speed) + wobble.yaw(t) * scale
            angle = h - yaw  # positive offset = to the right; turning right lowers the angle
            right = np.array([math.sin(h), math.cos(h)])
            xz = p + d * right
            pos = np.array([xz[0], 0.0, xz[1]])
            if env._valid_pose(pos, angle, safety_factor=1.0):
                break
            scale *= 0.5
        else:
            n_invalid += 1
        if scale < 1.0:
            n_shrunk += 1
        env.cur_pos = pos
        env.cur_angle = float(angle)
        try:
            lp = env.get_lane_pos2(pos, angle)
            lane = (float(lp.dist), float(lp.angle_deg))
        except NotInLane:
            lane = (None, None)
        t0 = time.perf_counter()
        img = env.render_obs()
        t_render = time.perf_counter() - t0
        fn = f'frame_{n:06d}.png'
        t0 = time.perf_counter()
        ok = cv2.imwrite(os.path.join(tmp, fn), np.ascontiguousarray(img[:, :, ::-1]), enc)
        t_write = time.perf_counter() - t0
        if not ok:
            raise RuntimeError(f'failed to write {fn}')
        frames.append(
            {
                'index': n,
                'file': fn,
                't': round(t, 6),
                'x': float(pos[0]),
                'z': float(pos[2]),
                'angle': float(angle),
                'segment': seg_idx,
                'curve': route.curve_at(s),
                'tile': list(graph.tile[route.curve_at(s)]),
                'lane_dist': lane[0],
                'lane_angle_deg': lane[1],
                'wobble_scale': scale,
                'dr_epoch': dr_epoch,
                'render_s': round(t_render, 6),
                'write_s': round(t_write, 6),
            }
        )
        s += ds
        t_seg += 1.0 / args.fps
        if (n + 1) % 50 == 0 or n + 1 == args.frames:
            el = time.time() - t_start
            print(f'[render] {args.map} seed={args.seed}: {n + 1}/{args.frames} frames, '
                  f'{el:.1f} s', flush=True)

    rt = np.array([f['render_s'] for f in frames])
    wt = np.array([f['write_s'] for f in frames])
    meta = {
        'format_version': FORMAT_VERSION,
        'complete': True,
        'map': args.map,
        'seed': args.seed,
        'fps': args.fps,
        'speed_mps': args.speed,
        'width': args.width,
        'height': args.height,
        'domain_rand': bool(args.domain_rand),
        'dr_every': args.dr_every if args.domain_rand else 0,
        'distortion': bool(args.distortion),
        'wobble_scale': args.wobble,
        'n_frames': len(frames),
        'image_format': 'png, 8-bit RGB as rendered by Simulator.render_obs(), lossless',
        'coordinates': 'x, z in metres on the ground plane (simulator world frame); angle in rad, '
        'heading direction (cos a, -sin a) in (x, z); pose = robot centre of rotation',
        'tile_size_m': graph.tile_size,
        'segments': segments,
        'n_frames_wobble_shrunk': n_shrunk,
        'n_frames_invalid_pose': n_invalid,
        'wobble': wobble.as_dict(),
        'timing': {
            'env_init_s': round(t_init, 3),
            'render_mean_s': round(float(rt.mean()), 5),
            'render_p95_s': round(float(np.percentile(rt, 95)), 5),
            'write_mean_s': round(float(wt.mean()), 5),
            'total_s': round(time.time() - t_start, 3),
            'lp_num_threads': os.environ.get('LP_NUM_THREADS'),
        },
        'gl': gl,
        'versions': _pkg_versions(),
        'command': ' '.join(shlex.quote(a) for a in
                            [sys.executable, os.path.abspath(__file__)]
                            + list(sys.argv[1:] if argv is None else argv)),
        'frames': frames,
    }
    with open(os.path.join(tmp, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)
    print(
        f'[render] done {out}: {len(frames)} frames, render {rt.mean() * 1000:.1f} ms/frame, '
        f'write {wt.mean() * 1000:.1f} ms/frame, segments {len(segments)}, '
        f'wobble shrunk {n_shrunk}, '
        f'invalid {n_invalid}, total {time.time() - t_start:.1f} s',
        flush=True,
    )
    env.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
