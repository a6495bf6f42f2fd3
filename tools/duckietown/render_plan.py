#!/usr/bin/env python3
"""Render every sequence of plan.json, one at a time, skipping complete ones.

Called by render_all.sh inside ``xvfb-run -a`` with the .venv-sim interpreter; each
sequence is rendered by a fresh ``render.py`` process (sharing the X display).

A sequence is complete when ``<out_root>/<name>/meta.json`` exists, says
``complete: true`` and matches the plan entry (map, seed, frames, fps, speed, size,
domain randomisation, wobble), and every listed PNG file exists.  A mismatching
sequence is re-rendered.  After all sequences are done, ``<out_root>/index.json``
lists them (name, split, role, map, frames, path).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))


def spec_of(entry: dict, defaults: dict) -> dict:
    s = dict(defaults)
    s.update(entry)
    s.setdefault('domain_rand', False)
    s['dr_every'] = int(s.get('dr_every', 0)) if s['domain_rand'] else 0
    return s


def is_complete(path: str, s: dict) -> tuple[bool, str]:
    mp = os.path.join(path, 'meta.json')
    if not os.path.exists(mp):
        return False, 'missing'
    try:
        with open(mp) as f:
            m = json.load(f)
    except Exception as e:  # noqa: BLE001
        return False, f'unreadable meta.json ({e})'
    checks = {
        'complete': (m.get('complete'), True),
        'map': (m.get('map'), s['map']),
        'seed': (m.get('seed'), s['seed']),
        'n_frames': (m.get('n_frames'), s['frames']),
        'fps': (float(m.get('fps', -1)), float(s['fps'])),
        'speed_mps': (float(m.get('speed_mps', -1)), float(s['speed'])),
        'width': (m.get('width'), s['width']),
        'height': (m.get('height'), s['height']),
        'domain_rand': (m.get('domain_rand'), bool(s['domain_rand'])),
        'dr_every': (m.get('dr_every'), s['dr_every']),
        'wobble_scale': (float(m.get('wobble_scale', -1)), float(s['wobble'])),
    }
    for k, (have, want) in checks.items():
        if have != want:
            return False, f'{k}: have {have!r}, plan {want!r}'
    for fr in m.get('frames', []):
        if not os.path.exists(os.path.join(path, fr['file'])):
            return False, f"missing {fr['file']}"
    return True, 'complete'


def render_cmd(s: dict, out: str) -> list[str]:
    cmd = [
        sys.executable,
        os.path.join(HERE, 'render.py'),
        '--map', s['map'],
        '--frames', str(s['frames']),
        '--fps', str(s['fps']),
        '--speed', str(s['speed']),
        '--seed', str(s['seed']),
        '--width', str(s['width']),
        '--height', str(s['height']),
        '--wobble', str(s['wobble']),
        '--out', out,
        '--overwrite',
    ]
    if s['domain_rand']:
        cmd += ['--domain-rand', '--dr-every', str(s['dr_every'])]
    return cmd


def fmt_t(sec: float) -> str:
    sec = int(round(sec))
    return f'{sec // 60}m{sec % 60:02d}s'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--plan', default=os.path.join(HERE, 'plan.json'))
    ap.add_argument('--quick', action='store_true', help="render the tiny 'quick' subset instead")
    ap.add_argument('--out-root', default=None, help="override the plan's output root")
    ap.add_argument('--only', nargs='*', default=None, help='render only these sequence names')
    ap.add_argument('--dry-run', action='store_true')
    args = ap.parse_args(argv)

    with open(args.plan) as f:
        plan = json.load(f)
    defaults = plan.get('defaults', {})
    entries = plan['quick'] if args.quick else plan['sequences']
    root = args.out_root or (plan['quick_out_root'] if args.quick else plan['out_root'])
    root = root if os.path.isabs(root) else os.path.join(REPO, root)
    os.makedirs(root, exist_ok=True)
    specs = [spec_of(e, defaults) for e in entries]
    if args.only:
        specs = [s for s in specs if s['name'] in set(args.only)]
    names = [s['name'] for s in specs]
    assert len(set(names)) == len(names), 'duplicate sequence names in plan'

    total_frames = sum(s['frames'] for s in specs)
    todo = []
    for s in specs:
        ok, why = is_complete(os.path.join(root, s['name']), s)
        if not ok:
            todo.append((s, why))
    todo_frames = sum(s['frames'] for s, _ in todo)
    print(
        f'[render_all] plan: {len(specs)} sequences / {total_frames} frames -> {root}; '
        f'{len(specs) - len(todo)} complete, {len(todo)} to render ({todo_frames} frames)',
        flush=True,
    )
    if args.dry_run:
        for s, why in todo:
            print(f"  would render {s['name']} ({why})")
        return 0

    t_all = time.time()
    done_frames = 0
    failed = []
    for k, (s, why) in enumerate(todo):
        out = os.path.join(root, s['name'])
        print(
            f"[render_all] [{k + 1}/{len(todo)}] {s['name']}: map={s['map']} frames={s['frames']} "
            f"seed={s['seed']} domain_rand={s['domain_rand']} ({why})",
            flush=True,
        )
        t0 = time.time()
        rc = subprocess.call(render_cmd(s, out))
        dt = time.time() - t0
        if rc != 0 or not is_complete(out, s)[0]:
            print(f"[render_all] FAILED {s['name']} (rc={rc})", flush=True)
            failed.append(s['name'])
            continue
        done_frames += s['frames']
        el = time.time() - t_all
        eta = el / done_frames * (todo_frames - done_frames) if done_frames else 0
        print(
            f"[render_all] [{k + 1}/{len(todo)}] {s['name']} done in {fmt_t(dt)} "
            f"({dt / s['frames'] * 1000:.0f} ms/frame); {done_frames}/{todo_frames} frames, "
            f'elapsed {fmt_t(el)}, ETA {fmt_t(eta)}',
            flush=True,
        )

    if failed:
        print(f"[render_all] {len(failed)} sequence(s) failed: {' '.join(failed)}", flush=True)
        return 1

    index = {
        'plan': os.path.relpath(args.plan, REPO),
        'root': os.path.relpath(root, REPO),
        'training_maps': plan.get('training_maps'),
        'heldout_maps': plan.get('heldout_maps'),
        'sequences': [
            {
                k: s[k]
                for k in ('name', 'split', 'role', 'map', 'frames', 'seed', 'domain_rand',
                          'dr_every', 'fps', 'speed', 'width', 'height')
                if k in s
            }
            | {'path': s['name']}
            for s in specs
        ],
    }
    if not args.only:
        with open(os.path.join(root, 'index.json'), 'w') as f:
            json.dump(index, f, indent=1)
    print(f'[render_all] all {len(specs)} sequences complete in {root} '
          f'({fmt_t(time.time() - t_all)})', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
