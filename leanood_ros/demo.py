"""The demo: play a recording through `ood_monitor` and print a readable verdict timeline.

Starts two real ROS processes (camera_replay -> ood_monitor) on a private, localhost-only ROS
domain and listens to the monitor's per-frame status and the replay's labels.  `ros2 launch` does
the same on a robot (launch/demo.launch.py); this runner exists because it also works where the
launch tools are not installed.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time

from .data.recordings import IN_DISTRIBUTION


def _env(domain: int) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH', '')) if p)
    return env


def _node(module: str, params: dict, env: dict, log) -> subprocess.Popen:
    args = [sys.executable, '-m', module, '--ros-args']
    for k, v in params.items():
        args += ['-p', f'{k}:={v}']
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)


def run(model: str, recording: str, device: str = 'cpu', rate: float = 0.0,
        shift: str = '', shift_after: float = 4.0, quiet: bool = False,
        domain: int | None = None) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, Header

    if domain is None:  # a private domain per run; tests pass their own
        domain = random.Random(os.getpid()).randint(150, 230)
    env = _env(domain)
    log_path = os.path.join(os.environ.get('TMPDIR', '/tmp'), f'leanood_demo_{os.getpid()}.log')
    log = open(log_path, 'wb')
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('demo_listener', context=ctx)
    labels, verdicts, lock = {}, {}, threading.Lock()

    def on_label(msg):
        with lock:
            labels[(msg.stamp.sec, msg.stamp.nanosec)] = msg.frame_id

    def on_status(msg):
        st = msg.status[0]
        kv = {v.key: v.value for v in st.values}
        with lock:
            verdicts[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (
                float(kv['score']), float(kv['p_value']), kv['is_safe'] == 'True', st.message,
                float(kv['latency_ms']))
    label_sub = node.create_subscription(Header, 'camera_replay/label', on_label, 1000)
    status_sub = node.create_subscription(DiagnosticArray, 'ood/status', on_status, 1000)
    monitor_up = threading.Event()   # the monitor's status publisher has matched us

    def on_diagnostics(msg):
        for st in msg.status:
            kv = {v.key: v.value for v in st.values}
            if int(kv.get('status_subscribers', 0)) >= 1:
                monitor_up.set()
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    is_safe_heard = threading.Event()
    node.create_subscription(Bool, 'ood/is_safe', lambda _: is_safe_heard.set(), latched)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    stop = threading.Event()
    spin = threading.Thread(target=_spin, args=(ex, stop), daemon=True)
    spin.start()

    # No frame or verdict may be lost before the endpoints match on both sides:
    #   1. the camera starts and holds playback until both its subscribers (the monitor and this
    #      listener) are matched and have acknowledged the first frame (camera_replay's
    #      wait_for_subscribers: an acknowledgement proves the subscriber's side too);
    #   2. the monitor starts;
    #   3. this listener waits until it hears the monitor (its latched flag, the status
    #      publisher matched here, and /diagnostics saying that the status publisher has
    #      matched this listener on its side too: statuses are built only for listeners it
    #      knows) and only then subscribes to the images: the camera starts, and every
    #      verdict finds this listener matched.
    replay_params = {'recording': recording, 'wait_for_subscribers': 2, 'rate': float(rate)}
    if shift:
        replay_params.update(shift=shift, shift_after_s=float(shift_after))
    replay = _node('leanood_ros.nodes.camera_replay', replay_params, env, log)
    monitor = None
    try:
        deadline = time.monotonic() + 60
        while _matched_publishers(node, label_sub) < 1:
            if replay.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'camera_replay did not start; see {log_path}')
            time.sleep(0.05)
        monitor = _node('leanood_ros.nodes.ood_monitor', {'model': model, 'device': device},
                        env, log)
        while not (monitor_up.wait(0.05) and is_safe_heard.is_set()
                   and _matched_publishers(node, status_sub) >= 1):
            if monitor.poll() is not None or time.monotonic() > deadline + 60:
                raise RuntimeError(f'ood_monitor did not start; see {log_path}')
        node.create_subscription(Image, 'image', lambda _: None, 1)
        while replay.poll() is None:
            time.sleep(0.1)
            if monitor.poll() is not None:
                raise RuntimeError(f'ood_monitor exited with {monitor.returncode}; see {log_path}')
        time.sleep(1.0)
    finally:
        procs = [p for p in (replay, monitor) if p is not None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        stop.set()
        spin.join(timeout=2.0)
        ex.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        log.close()
    if replay.returncode not in (0, None, -signal.SIGINT):
        raise RuntimeError(f'camera_replay failed ({replay.returncode}); see {log_path}')
    return summarize(labels, verdicts, quiet)


def _matched_publishers(node, sub) -> int:
    """Count the publishers this subscription has matched (the reader's side).

    Humble's rclpy lacks Subscription.get_publisher_count: there, the graph's count.
    """
    count = getattr(sub, 'get_publisher_count', None)
    return count() if count else node.count_publishers(sub.topic_name)


def _spin(ex, stop):
    while not stop.is_set():
        try:
            ex.spin_once(timeout_sec=0.05)
        except Exception:
            return


def summarize(labels: dict, verdicts: dict, quiet: bool = False) -> dict:
    """Print the timeline (one line per change of label or verdict) and the detection delays."""
    stamps = sorted(labels)
    rows = []
    for i, st in enumerate(stamps):
        v = verdicts.get(st)
        rows.append((i, st[0] + st[1] * 1e-9, labels[st], v))
    if not rows:
        raise RuntimeError('no frames were played')
    t0 = rows[0][1]
    out = print if not quiet else (lambda *a, **k: None)
    out(f'{"frame":>5} {"t[s]":>6}  {"label":<16} {"score":>9} {"p":>7}  verdict')
    prev = None
    for i, t, label, v in rows:
        key = (label, None if v is None else v[2])
        if key != prev or i == len(rows) - 1:
            if v is None:
                out(f'{i:>5} {t - t0:>6.2f}  {label:<16} {"-":>9} {"-":>7}  (frame not judged)')
            else:
                out(f'{i:>5} {t - t0:>6.2f}  {label:<16} {v[0]:>9.3f} {v[1]:>7.3f}  '
                    f'{"SAFE  " if v[2] else "UNSAFE"} {v[3]}')
        prev = key
    judged = [r for r in rows if r[3] is not None]
    summary = {'frames': len(rows), 'judged': len(judged),
               'latency_ms_mean': (sum(r[3][4] for r in judged) / len(judged)) if judged else None,
               'false_alarms_in_distribution': sum(1 for r in judged if r[2] == IN_DISTRIBUTION
                                                   and not r[3][2] and r[0] > 0)}
    onset = next((r for r in rows if r[2] not in (IN_DISTRIBUTION, 'unknown')), None)
    if onset is not None:
        flagged = next((r for r in judged if r[0] >= onset[0] and not r[3][2]), None)
        summary.update(shift=onset[2], shift_frame=onset[0])
        if flagged is None:
            out(f"\nshift '{onset[2]}' starts at frame {onset[0]}: NOT flagged")
            summary['delay_frames'] = None
        else:
            summary.update(delay_frames=flagged[0] - onset[0], delay_s=flagged[1] - onset[1])
            out(f"\nshift '{onset[2]}' starts at frame {onset[0]} (t={onset[1] - t0:.2f} s); "
                f'flagged unsafe at frame {flagged[0]}: delay {flagged[0] - onset[0]} frames '
                f'({flagged[1] - onset[1]:.2f} s)')
    out(f"frames judged: {summary['judged']}/{summary['frames']}, in-distribution frames "
        f"flagged unsafe: {summary['false_alarms_in_distribution']}, mean latency "
        f"{summary['latency_ms_mean'] or float('nan'):.1f} ms")
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood demo', description=__doc__.splitlines()[0])
    ap.add_argument('--model', default=None,
                    help='bundle variant or path (default: vae_lean, else earlin_lite0)')
    ap.add_argument('--recording', default='sample', help="bag/folder/video, or 'sample'")
    ap.add_argument('--device', default='cpu', choices=('cpu', 'gpu'))
    ap.add_argument('--rate', type=float, default=0.0, help='fps (0 = recorded rate)')
    ap.add_argument('--shift', default='', help='inject a shift live (e.g. rain)')
    ap.add_argument('--shift-after', type=float, default=4.0)
    a = ap.parse_args(argv)
    if a.model is None:
        from .bundle import default_models_dir
        a.model = next((m for m in ('vae_lean', 'earlin_lite0')
                        if (default_models_dir() / m / 'bundle.json').is_file()), 'vae_lean')
    print(f'demo: {a.recording} -> ood_monitor ({a.model}, {a.device})', flush=True)
    summary = run(a.model, a.recording, a.device, a.rate, a.shift, a.shift_after)
    return 0 if summary['judged'] > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
