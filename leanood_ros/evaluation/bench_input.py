"""`leanood bench input`: the node's camera input path against a baseline revision, in one run.

    leanood bench input --baseline edd12c9 --out benchmarks/raw_input [--seconds 10] [--rounds 2]

The baseline revision is exported with `git archive` to a temporary folder and its ood_monitor
runs beside this checkout's on the same machine, camera, Fast DDS profile and bundle (vae_lean),
in alternating order.  Overhead: `bench node` at 30 Hz for 640x480 rgb8, 1920x1080 rgb8 and
1920x1080 JPEG (the node's own time per frame, receipt to verdict minus inference, as it reports
it).  Memory: for each single big frame (1080p, 4K UHD and 4096x4096 rgb8, a 4096x4096 JPEG) a
fresh node, steady at 640x480 frames first, then the one frame: peak RSS (VmHWM) against the
steady RSS.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import subprocess
import tempfile
import time

from .bench import _pct, bench_node, machine, NodeRun, publish, REPO
from .bench_camera import load_frames

OVERHEAD_INPUTS = (((640, 480), False), ((1920, 1080), False), ((1920, 1080), True))
BIG_FRAMES = (((1920, 1080), False), ((3840, 2160), False), ((4096, 4096), False),
              ((4096, 4096), True))


def export_revision(rev: str, into: Path) -> Path:
    """`git archive` of `rev` (models included: they are tracked) unpacked into `into`."""
    archive = subprocess.run(['git', '-C', str(REPO), 'archive', rev], check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', str(into)], input=archive, check=True)
    return into


def current_revision() -> str:
    """Return this checkout's revision (+ 'with uncommitted changes' when the tree is dirty)."""
    def git(*args):
        return subprocess.run(['git', '-C', str(REPO), *args], capture_output=True,
                              text=True).stdout.strip()
    rev = git('rev-parse', '--short', 'HEAD') or 'this checkout'
    return rev + (' with uncommitted changes' if git('status', '--porcelain', '-uno') else '')


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def single_frame_memory(repo: Path, size, compressed: bool) -> dict:
    """Peak RSS of a fresh node for one big frame after a steady stream of 640x480 frames."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    run = NodeRun('vae_lean', ['compressed:=true'] if compressed else [], cpu=None, repo=repo)
    try:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub = run.lis.create_publisher(CompressedImage if compressed else Image,
                                       'image/compressed' if compressed else 'image', qos)

        def message(data: bytes, w: int, h: int):
            msg = CompressedImage(format='jpeg') if compressed else Image(
                height=h, width=w, encoding='rgb8', step=w * 3)
            msg.data = data
            msg.header.stamp = run.lis.get_clock().now().to_msg()
            return msg
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for data in load_frames(640, 480, limit=40, jpeg=compressed):   # 2 s at 20 Hz
            pub.publish(message(data, 640, 480))
            time.sleep(0.05)
        time.sleep(1.0)
        steady = _status_mb(run.node.pid, 'VmRSS')
        (big,) = load_frames(*size, limit=1, jpeg=compressed)
        judged = len(run.status)
        t0 = time.monotonic()
        pub.publish(message(big, *size))
        while len(run.status) == judged and time.monotonic() < t0 + 30:
            time.sleep(0.01)
        verdict_ms = (time.monotonic() - t0) * 1e3 if len(run.status) > judged else None
        peak = _status_mb(run.node.pid, 'VmHWM')
        return {'frame': f"{size[0]}x{size[1]} {'jpeg' if compressed else 'rgb8'}",
                'message_mb': len(big) / 2 ** 20, 'steady_rss_mb': steady, 'peak_rss_mb': peak,
                'peak_over_steady': peak / steady, 'verdict_ms': verdict_ms,
                'after_rss_mb': _status_mb(run.node.pid, 'VmRSS')}
    finally:
        run.close()


def run_all(baseline: Path, seconds: float, rounds: int) -> dict:
    sides = {'baseline': baseline, 'current': REPO}
    overhead, memory = [], []
    for size, compressed in OVERHEAD_INPUTS:
        per = {side: [] for side in sides}
        for r in range(rounds):   # alternate which side runs first
            for side in (('baseline', 'current') if r % 2 == 0 else ('current', 'baseline')):
                per[side].append(bench_node('vae_lean', (30,), seconds, size, compressed,
                                            repo=sides[side])['rows'][0])
        overhead.append({'input': f"{size[0]}x{size[1]} {'jpeg' if compressed else 'rgb8'}",
                         **per})
    for size, compressed in BIG_FRAMES:
        memory.append({side: single_frame_memory(repo, size, compressed)
                       for side, repo in sides.items()})
    return {'overhead': overhead, 'memory': memory}


def _median(rows, key):
    return _pct([r[key] for r in rows], 50)


def markdown(r: dict) -> str:
    m = r['machine']
    lines = [
        f"# Camera input path: {r.get('current', 'this checkout')} vs revision {r['baseline']}",
        '',
        f"{m['cpu']} ({m['cores']} cores), Python {m['python']}, {m['date']}.  Regenerate with "
        f"`leanood bench input --baseline {r['baseline']} --out {r.get('out', 'DIR')}`.  "
        f"Baseline = revision {r['baseline']}; current = {r.get('current', 'this checkout')}.  "
        'Both run in '
        f"this one run, alternating, vae_lean, node pinned to one core; {r['rounds']} rounds of "
        f"{r['seconds']:g} s at 30 Hz per input, medians over the rounds' p50/p99.",
        '',
        '## Node overhead per frame (receipt to verdict, minus inference)',
        '',
        '| input | baseline p50 / p99 ms | current p50 / p99 ms | p50 ratio (baseline / '
        'current) | judged (baseline / current) | transport p50 ms (baseline / current) | '
        'end-to-end p50 ms (baseline / current) | RSS MB (baseline / current) |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for o in r['overhead']:
        b, c = o['baseline'], o['current']
        lines.append(
            f"| {o['input']} | {_median(b, 'node_overhead_p50_ms'):.2f} / "
            f"{_median(b, 'node_overhead_p99_ms'):.2f} | {_median(c, 'node_overhead_p50_ms'):.2f}"
            f" / {_median(c, 'node_overhead_p99_ms'):.2f} | "
            f"{_median(b, 'node_overhead_p50_ms') / _median(c, 'node_overhead_p50_ms'):.1f}x | "
            f"{sum(x['judged'] for x in b)}/{sum(x['sent'] for x in b)} / "
            f"{sum(x['judged'] for x in c)}/{sum(x['sent'] for x in c)} | "
            f"{_median(b, 'transport_p50_ms'):.2f} / {_median(c, 'transport_p50_ms'):.2f} | "
            f"{_median(b, 'e2e_p50_ms'):.2f} / {_median(c, 'e2e_p50_ms'):.2f} | "
            f"{_median(b, 'node_rss_mb'):.0f} / {_median(c, 'node_rss_mb'):.0f} |")
    lines += [
        '',
        "Transport is stamp to the node's callback (DDS and the executor taking the frame); the "
        "overhead is the node's own time from there to the verdict, minus inference.",
        '',
        '## Peak RSS for one big frame (a fresh node each, steady at 640x480 first)',
        '',
        '| frame | message MB | baseline steady / peak MB (ratio) | current steady / peak MB '
        '(ratio) | verdict after ms (baseline / current) |',
        '|---|---|---|---|---|',
    ]
    for row in r['memory']:
        b, c = row['baseline'], row['current']
        lines.append(
            f"| {c['frame']} | {c['message_mb']:.1f} | {b['steady_rss_mb']:.0f} / "
            f"{b['peak_rss_mb']:.0f} ({b['peak_over_steady']:.2f}x) | {c['steady_rss_mb']:.0f} / "
            f"{c['peak_rss_mb']:.0f} ({c['peak_over_steady']:.2f}x) | "
            f"{b['verdict_ms'] or float('nan'):.0f} / {c['verdict_ms'] or float('nan'):.0f} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood bench input', description=__doc__.splitlines()[0])
    ap.add_argument('--baseline', required=True, help='git revision to compare against')
    ap.add_argument('--seconds', type=float, default=10.0, help='per overhead run')
    ap.add_argument('--rounds', type=int, default=2, help='overhead runs per side and input')
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    a.baseline = subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short', a.baseline],
                                check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix='leanood_baseline_') as tmp:
        results = {'machine': machine(), 'baseline': a.baseline, 'seconds': a.seconds,
                   'rounds': a.rounds, 'out': str(a.out or 'DIR'), 'current': current_revision(),
                   **run_all(export_revision(a.baseline, Path(tmp)), a.seconds, a.rounds)}
    publish(results, markdown(results), a.out)
    return 0
