"""`leanood bench executors`: the node on rclpy's SingleThreadedExecutor vs its EventsExecutor.

    leanood bench executors --out benchmarks/executors [--seconds 8] [--rounds 3]

One run, same machine, camera, Fast DDS profiles and bundle (vae_lean), node pinned to one core;
the two executors alternate which goes first.  For each input (640x480 rgb8 at 30 and 240 Hz,
1920x1080 rgb8 at 30 Hz): frames lost before the node, judged, and the per-frame split into
transport (stamp to the node's callback: DDS plus the executor taking the frame), the node's own
overhead (callback to verdict minus inference) and inference; medians over the rounds' p50s.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .bench import _pct, bench_node, counted, machine, publish
from ..nodes.ros_common import events_executor_missing
from ..parameters import EXECUTORS
INPUTS = (((640, 480), 30), ((640, 480), 240), ((1920, 1080), 30))


def run_all(seconds: float, rounds: int) -> list:
    rows = []
    for size, rate in INPUTS:
        per = {kind: [] for kind in EXECUTORS}
        for r in range(rounds):   # alternate which executor runs first
            for kind in EXECUTORS[::1 if r % 2 == 0 else -1]:
                per[kind].append(bench_node('vae_lean', (rate,), seconds, size,
                                            params=[f'executor:={kind}'])['rows'][0])
        rows.append({'input': f'{size[0]}x{size[1]} rgb8', 'rate_hz': rate, **per})
    return rows


def _median(rows, key):
    return _pct([r[key] for r in rows], 50)


def _sum(rows, key):
    return counted(sum(r.get(key, float('nan')) for r in rows))


def markdown(r: dict) -> str:
    m = r['machine']
    lines = [
        '# rclpy executors side by side: SingleThreadedExecutor vs EventsExecutor',
        '',
        f"{m['cpu']} ({m['cores']} cores), Python {m['python']}, {m['date']}.  Regenerate with "
        '`leanood bench executors --out benchmarks/executors`.  `executor:=single_threaded` '
        "(the default) against `executor:=events` (rclpy's C++ EventsExecutor, Kilted), in this "
        f"one run, alternating, vae_lean, node pinned to one core; {r['rounds']} rounds of "
        f"{r['seconds']:g} s per input, medians over the rounds' p50s.  Transport is stamp to "
        "the node's callback, so it includes the executor taking the frame; lost: frames "
        'published that never reached the callback (events: not counted, see below).',
        '',
        '| input | executor | sent / lost / judged | transport p50 ms | node overhead p50 / '
        'p99 ms | inference p50 | end-to-end p50 / p99 ms | RSS MB |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in r['rows']:
        for kind in EXECUTORS:
            x = row[kind]
            lines.append(
                f"| {row['input']} {row['rate_hz']} Hz | {kind} | {sum(v['sent'] for v in x)} / "
                f"{_sum(x, 'lost_before_node')} / {sum(v['judged'] for v in x)} | "
                f"{_median(x, 'transport_p50_ms'):.2f} | "
                f"{_median(x, 'node_overhead_p50_ms'):.2f} / "
                f"{_median(x, 'node_overhead_p99_ms'):.2f} | "
                f"{_median(x, 'inference_p50_ms'):.2f} | {_median(x, 'e2e_p50_ms'):.2f} / "
                f"{_median(x, 'e2e_p99_ms'):.2f} | {_median(x, 'node_rss_mb'):.0f} |")
        s, e = row['single_threaded'], row['events']

        def ratio(key):
            return f'{_median(e, key) / _median(s, key):.2f}x'
        lines.append(f"| | events / single_threaded | | {ratio('transport_p50_ms')} | "
                     f"{ratio('node_overhead_p50_ms')} | | {ratio('e2e_p50_ms')} | |")
    lines += [
        '',
        'With `executor:=events` the node hands its image callback a message only (rclpy '
        "9.1's EventsExecutor raises `SystemError` on the two-argument MessageInfo callbacks), "
        'so `frames_lost` reads unknown there.',
    ]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood bench executors',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=8.0, help='per run')
    ap.add_argument('--rounds', type=int, default=3, help='runs per executor and input')
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    missing = events_executor_missing()
    if missing:
        ap.error(missing)
    results = {'machine': machine(), 'seconds': a.seconds, 'rounds': a.rounds,
               'rows': run_all(a.seconds, a.rounds)}
    publish(results, markdown(results), a.out)
    return 0
