"""Where a big raw frame's memory goes before any node code runs (benchmarks/raw_input).

    .venv/bin/python tools/experiments/raw_frame_memory.py [--size 4096x4096] [--domain 150]

A bare rclpy subscriber (no monitor) in a process of its own, once with a message subscription
and once with `raw=True`, receives five 640x480 rgb8 frames and then one big one from a
publisher process over stock Fast DDS.  It prints its RSS inside the callback (what is alive
while the node holds the frame), its peak RSS (VmHWM) and its RSS afterwards (what the
middleware keeps), so the copies can be counted against the frame size.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def status_mb(key: str) -> float:
    with open('/proc/self/status') as f:
        return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith(key + ':'))


def subscriber(raw: bool) -> None:
    import rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('raw_frame_memory_sub')
    seen = []
    steady = []

    def on_frame(msg):
        size = len(msg) if raw else len(msg.data)
        if size < 10 ** 6:
            steady.append(status_mb('VmRSS'))
        seen.append((size, status_mb('VmRSS')))
    node.create_subscription(Image, 'image', on_frame, 1, raw=raw)
    deadline = time.monotonic() + 60
    while len(seen) < 6 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({'raw': raw, 'steady_mb': steady[-1], 'frame_bytes': seen[-1][0],
                      'in_callback_mb': seen[-1][1], 'peak_mb': status_mb('VmHWM'),
                      'after_mb': status_mb('VmRSS')}))


def publisher(width: int, height: int) -> None:
    import rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('raw_frame_memory_pub')
    pub = node.create_publisher(Image, 'image', 1)
    while pub.get_subscription_count() == 0:
        time.sleep(0.05)
    time.sleep(1.0)
    for w, h, fill in [(640, 480, i) for i in range(5)] + [(width, height, 100)]:
        msg = Image(height=h, width=w, encoding='rgb8', step=w * 3)
        msg.data = bytes([fill]) * (w * h * 3)
        pub.publish(msg)
        time.sleep(0.3)
    time.sleep(3.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--size', default='4096x4096')
    ap.add_argument('--domain', type=int, default=150)
    ap.add_argument('--role', choices=('sub', 'sub-raw', 'pub'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    width, height = (int(x) for x in a.size.split('x'))
    if a.role == 'pub':
        publisher(width, height)
        return 0
    if a.role:
        subscriber(a.role == 'sub-raw')
        return 0
    env = dict(os.environ, ROS_DOMAIN_ID=str(a.domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    me = [sys.executable, __file__, '--size', a.size]
    print(f'{a.size} rgb8 frame ({width * height * 3 / 2 ** 20:.1f} MB), bare rclpy subscriber')
    for role in ('sub', 'sub-raw'):
        sub = subprocess.Popen(me + ['--role', role], env=env, stdout=subprocess.PIPE, text=True)
        subprocess.run(me + ['--role', 'pub'], env=env, check=True)
        r = json.loads(sub.communicate(timeout=60)[0].strip().splitlines()[-1])
        mb = r['frame_bytes'] / 2 ** 20

        def frames(key):
            return f"{r[key]:.0f} MB (+{(r[key] - r['steady_mb']) / mb:.1f} frames)"
        print(f"{'raw=True' if r['raw'] else 'message '}: steady {r['steady_mb']:.0f} MB, in the "
              f"callback {frames('in_callback_mb')}, peak {frames('peak_mb')}, after "
              f"{frames('after_mb')}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
