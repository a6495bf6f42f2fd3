"""`leanood bench cadence`: the node's own work per frame, back to back and at camera rates.

    leanood bench cadence --out benchmarks/cadence [--frames 300] [--rounds 3]

One process pinned to one core: the real `ood_monitor` node (vae_lean, its executor spinning in
a thread) is handed serialized 640x480 rgb8 frames straight into its camera callback, no DDS on
the way in; a frame's overhead is what the node counts (callback to verdict out, minus
inference), read just after its publications.  Fed back to back (the next frame as soon as the
verdict is out: the core never rests) and at 240 and 30 Hz (it rests between frames), in one
run, alternating.  Beside it a probe of the machine alone: a fixed piece of Python and NumPy
work timed after the same gaps, spent asleep or busy-waiting.  Where the probe's time grows
with the gap even while busy-waiting, the core loses its caches to something outside this
process (a VM's neighbours), and no change to the node's code shows in its 30 Hz figure alone.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
import threading
import time

import numpy as np

from .bench import _pct, machine, monitor_profile, publish, sample_frames

FEEDS = (('back to back', 0.0), ('240 Hz', 1 / 240), ('30 Hz', 1 / 30))
GAPS = tuple(period for _, period in FEEDS)   # the probe rests as long as the node does


def probe_work(buf: np.ndarray) -> float:
    """Return the us a fixed 200-step loop and three 12 288-float multiplies take."""
    t = time.perf_counter()
    for _ in range(3):
        buf *= 1.0
    total = 0
    for i in range(200):
        total += i
    return (time.perf_counter() - t) * 1e6


def busy_wait(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def probe(gap: float, busy: bool, n: int = 200) -> float:
    """Return the probe's p50 (us) when each run follows `gap` s asleep or busy-waiting."""
    buf, times = np.ones(12288, np.float32), []
    for _ in range(n):
        if gap:
            (busy_wait if busy else time.sleep)(gap)
        times.append(probe_work(buf))
    return _pct(times[n // 10:], 50)


class Feeder:
    """The node, and serialized frames with fresh stamps for its camera callback."""

    def __init__(self, model: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image
        from ..nodes.ood_monitor import MESSAGE_INFO, node_overhead_ms, OodMonitorNode
        rclpy.init(args=[])
        self.node = OodMonitorNode(parameter_overrides=[Parameter('model', value=model)])
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        cam = self.node.cameras[0]
        self._callback = self.node._callback(cam)
        self._info = MESSAGE_INFO and self.node.executor_kind != 'events'   # as the node does
        self.overheads = []
        real = self.node._publish_verdict

        def publish_verdict(cam, frame, v, received_at, received_ns):
            real(cam, frame, v, received_at, received_ns)
            self.overheads.append(node_overhead_ms(received_at, v))
        self.node._publish_verdict = publish_verdict
        self._msg = Image(height=480, width=640, encoding='rgb8', step=640 * 3)
        self._msg.header.frame_id = 'camera'
        self._frames = [np.ascontiguousarray(f.pixels).tobytes() for f in sample_frames(20)]
        self._sequence = 0

    def frame(self) -> bytes:
        """Return the next sample frame, stamped now; they differ, so none is a frozen repeat."""
        from rclpy.serialization import serialize_message
        self._sequence += 1
        now = time.time_ns()
        self._msg.header.stamp.sec, self._msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        self._msg.data = self._frames[self._sequence % len(self._frames)]
        return serialize_message(self._msg)

    def feed(self, msg: bytes) -> None:
        if self._info:
            self._callback(msg, {'publication_sequence_number': self._sequence,
                                 'publisher_gid': {'data': b'\x01' * 16}})
        else:
            self._callback(msg)

    def run(self, period: float, frames: int) -> dict:
        """Feed `frames` frames, one per `period` s (0: each once the last verdict is out)."""
        start = len(self.overheads)
        due = time.perf_counter()
        for _ in range(frames):
            msg = self.frame()
            want = len(self.overheads) + 1
            self.feed(msg)
            if period == 0.0:
                limit = time.perf_counter() + 1.0
                while len(self.overheads) < want and time.perf_counter() < limit:
                    time.sleep(0)
            else:
                due += period
                time.sleep(max(0.0, due - time.perf_counter()))
        time.sleep(0.1)
        values = self.overheads[start:]
        judged = len(values)
        values = values[len(values) // 10:]   # warm-up left out
        return {'fed': frames, 'judged': judged, 'overhead_p50_ms': _pct(values, 50),
                'overhead_p90_ms': _pct(values, 90)}

    def close(self) -> None:
        import rclpy
        self.node.close()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def run_all(model: str, frames: int, rounds: int) -> dict:
    if hasattr(os, 'sched_setaffinity') and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})   # before any thread starts: all of them on one core
    os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(monitor_profile()))
    feeder = Feeder(model)
    per = {name: [] for name, _ in FEEDS}
    try:
        feeder.run(0.0, 30)   # the first frames after start-up
        for r in range(rounds):
            for name, period in FEEDS[::1 if r % 2 == 0 else -1]:
                per[name].append(feeder.run(period, frames))
    finally:
        feeder.close()
    probes = [{'gap_ms': g * 1e3, 'asleep_p50_us': probe(g, False),
               'busy_p50_us': probe(g, True)} for g in GAPS]
    return {'model': model, 'frames': frames, 'rounds': rounds, 'feeds': per, 'probe': probes}


def markdown(r: dict) -> str:
    m = r['machine']
    feeds = r['feeds']
    hot = _pct([x['overhead_p50_ms'] for x in feeds['back to back']], 50)
    lines = [
        "# The node's own work per frame: back to back and at camera rates", '',
        f"{m['cpu']} ({m['cores']} cores), Python {m['python']}, onnxruntime "
        f"{m['onnxruntime']}, {m['date']}.  Regenerate with `leanood bench cadence --out "
        f"benchmarks/cadence`.  The real node ({r['model']}) in one process pinned to one core, "
        '640x480 rgb8 frames handed to its camera callback (no DDS on the way in); overhead as '
        f"the node counts it (callback to verdict out, minus inference); {r['rounds']} rounds "
        f"of {r['frames']} frames per feed, alternating, medians over the rounds.", '',
        '| feed | judged / fed | node overhead p50 / p90 ms | p50 / back to back |',
        '|---|---|---|---|',
    ]
    for name, _ in FEEDS:
        x = feeds[name]
        p50 = _pct([v['overhead_p50_ms'] for v in x], 50)
        lines.append(f"| {name} | {sum(v['judged'] for v in x)} / {sum(v['fed'] for v in x)} | "
                     f"{p50:.3f} / {_pct([v['overhead_p90_ms'] for v in x], 50):.3f} | "
                     f'{p50 / hot:.2f}x |')
    base = r['probe'][0]
    lines += ['', 'The machine alone: a 200-step Python loop and three in-place multiplies of '
              '12 288 floats, p50 over 200 runs, each after the gap.', '',
              '| gap before each run | asleep us | busy-waiting us | asleep / no gap | '
              'busy-waiting / no gap |', '|---|---|---|---|---|']
    for p in r['probe']:
        lines.append(f"| {p['gap_ms']:.1f} ms | {p['asleep_p50_us']:.1f} | "
                     f"{p['busy_p50_us']:.1f} | {p['asleep_p50_us'] / base['asleep_p50_us']:.1f}x"
                     f" | {p['busy_p50_us'] / base['busy_p50_us']:.1f}x |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood bench cadence',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='vae_lean')
    ap.add_argument('--frames', type=int, default=300, help='per feed and round')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    if a.frames < 10 or a.rounds < 1:
        ap.error('--frames must be at least 10 and --rounds at least 1')
    results = {'machine': machine(), **run_all(a.model, a.frames, a.rounds)}
    publish(results, markdown(results), a.out)
    return 0
