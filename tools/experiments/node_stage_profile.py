"""ood_monitor with timers on each stage of its judging path (benchmarks/raw_input).

    .venv/bin/python tools/experiments/node_stage_profile.py --ros-args -p model:=vae_lean

The real node, its judging-path methods wrapped in timers; on exit (SIGINT) it prints p50/p90
per stage over the frames it judged (the first 30 left out: warm-up).  Feed it with
`python -m leanood_ros.evaluation.bench_camera`; subscribe to ood/status or not to see what the
per-frame status costs.  `wake` is camera callback -> judging thread start.
"""
import atexit
import collections
import sys
import time

import numpy as np

from leanood_ros import monitor
from leanood_ros.nodes import ood_monitor

WALL = collections.defaultdict(list)


def timed(owner, name: str) -> None:
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            WALL[name].append((time.perf_counter() - t) * 1e3)
    setattr(owner, name, wrapper)


def judge_with_totals(real):
    def wrapper(self, camera, msg, received_at, *args):
        WALL['wake'].append((time.monotonic() - received_at) * 1e3)
        t, cpu = time.perf_counter(), time.thread_time()
        real(self, camera, msg, received_at, *args)
        WALL['_judge (all of it)'].append((time.perf_counter() - t) * 1e3)
        WALL['_judge, judging-thread CPU'].append((time.thread_time() - cpu) * 1e3)
    return wrapper


def report() -> None:
    for name, values in WALL.items():
        v = np.asarray(values[30:])
        if v.size:
            print(f'{name:28s} n={v.size:4d}  p50 {np.percentile(v, 50):.3f}  '
                  f'p90 {np.percentile(v, 90):.3f} ms', flush=True)


shell = ood_monitor.MonitorShell
shell._judge = judge_with_totals(shell._judge)
for owner, name in ((shell, '_on_image'), (shell, '_decode'), (shell, '_publish_verdict'),
                    (shell, '_publish_status'), (monitor.MonitorCore, 'admit'),
                    (monitor.MonitorCore, 'judge'), (ood_monitor, 'read_image'),
                    (ood_monitor, 'read_compressed_image')):
    timed(owner, name)
atexit.register(report)

if __name__ == '__main__':
    sys.exit(ood_monitor.main())
