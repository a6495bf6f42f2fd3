"""A benchmark camera process: publishes real frames (640x480 unless told) on a schedule.

    python -m leanood_ros.evaluation.bench_camera --schedule 30:10,300:3,0:3,30:10 [--bad 0.1]

The schedule is a list of `rate_hz:seconds` segments (rate 0 = a stalled camera).  Frames are
the sample recording's frames (decoded once, upscaled to --width x --height if needed) as raw
rgb8 Images, or with --compressed as JPEG (quality 90) CompressedImages; a fraction `--bad` of
them is malformed (truncated).  Stamps are taken at publish time.  Waits for a subscriber before
starting; prints a JSON summary at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import cv2
import numpy as np


def load_frames(width: int, height: int, limit: int = 40, jpeg: bool = False) -> list:
    from ..data.recordings import open_recording
    from ..image_conversion import to_rgb
    from ..nodes.camera_replay import sample_recording
    out = []
    with open_recording(sample_recording()) as rec:
        for frame in rec:
            rgb = to_rgb(frame.image)
            if rgb.shape[:2] != (height, width):
                rgb = cv2.resize(rgb, (width, height))
            out.append(cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
                       .tobytes() if jpeg else np.ascontiguousarray(rgb).tobytes())
            if len(out) >= limit:
                break
    return out


def main(argv=None) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    ap = argparse.ArgumentParser()
    ap.add_argument('--schedule', default='30:10')
    ap.add_argument('--width', type=int, default=640)
    ap.add_argument('--height', type=int, default=480)
    ap.add_argument('--bad', type=float, default=0.0, help='fraction of malformed frames')
    ap.add_argument('--best-effort', action='store_true')
    ap.add_argument('--compressed', action='store_true', help='JPEG on image/compressed')
    ap.add_argument('--topic', default='image', help='image topic (+ /compressed)')
    a = ap.parse_args(argv)
    frames = load_frames(a.width, a.height, jpeg=a.compressed)
    rclpy.init()
    node = rclpy.create_node('bench_camera')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT if a.best_effort
                     else ReliabilityPolicy.RELIABLE)
    if a.compressed:
        pub = node.create_publisher(CompressedImage, f'{a.topic}/compressed', qos)
        msg = CompressedImage(format='jpeg')
    else:
        pub = node.create_publisher(Image, a.topic, qos)
        msg = Image(height=a.height, width=a.width, encoding='rgb8', step=a.width * 3,
                    is_bigendian=0)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    rng = np.random.default_rng(0)
    sent = bad = 0
    msg.header.frame_id = 'camera'
    t_start = time.monotonic()
    for seg in a.schedule.split(','):
        rate, seconds = (float(x) for x in seg.split(':'))
        end = time.monotonic() + seconds
        if rate <= 0:
            time.sleep(seconds)
            continue
        period, nxt = 1.0 / rate, time.monotonic()
        while time.monotonic() < end:
            is_bad = a.bad > 0 and rng.random() < a.bad
            data = frames[sent % len(frames)]
            msg.data = data[: len(data) // 2] if is_bad else data
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            sent += 1
            bad += is_bad
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))
    print(json.dumps({'sent': sent, 'bad': bad, 'seconds': time.monotonic() - t_start}),
          flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
