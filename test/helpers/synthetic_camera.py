"""A camera publisher process for integration tests: plays a scripted scenario of synthetic frames.

    python synthetic_camera.py --scenario id:40,ood:40,stall:2,bad:5,id:10 --rate 20 [--compressed]

Segments: `id:N` / `ood:N` publish N frames, `bad:N` publishes N malformed frames (truncated,
wrong step, unknown encoding, zero size, cycling), `stall:S` publishes nothing for S seconds.
Each frame's header carries "cam:<index>:<kind>:<sec>.<nanosec>" in frame_id and the send time
as stamp, so the test can match verdicts to frames.  Waits for a subscriber before starting.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from bundle_factory import id_frame, ood_frame   # on PYTHONPATH (ros_harness.ros_env)

BAD = ('truncated', 'step', 'encoding', 'zero', 'jpeg')


def make_msg(kind, rng, index, compressed, clock, w, h):
    suffix = ''
    if compressed:
        msg = CompressedImage(format='jpeg')
        if kind == 'bad':
            msg.data = b'\xff\xd8 definitely not a jpeg'
        else:
            img = id_frame(rng, h, w) if kind == 'id' else ood_frame(rng, h, w)
            msg.data = cv2.imencode('.jpg', img[..., ::-1])[1].tobytes()
    else:
        msg = Image(height=h, width=w, encoding='rgb8', step=w * 3)
        if kind == 'bad':
            flavour = BAD[index % len(BAD)]
            suffix = ':' + flavour
            data = id_frame(rng, h, w).tobytes()
            if flavour == 'truncated':
                data = data[: len(data) // 2]
            elif flavour == 'step':
                msg.step = w  # smaller than width * 3
            elif flavour == 'encoding':
                msg.encoding = 'bayer_weird16'
            elif flavour == 'zero':
                msg.height, msg.width, msg.step, data = 0, 0, 0, b''
            elif flavour == 'jpeg':
                msg.encoding = 'rgb8'
                data = b'\x00' * 10
            msg.data = data
        else:
            img = id_frame(rng, h, w) if kind == 'id' else ood_frame(rng, h, w)
            msg.data = img.tobytes()
    # stamped once built: a big frame takes long enough to make that its stamp would be stale
    stamp = clock.now().to_msg()
    msg.header.frame_id = f'cam:{index}:{kind}:{stamp.sec}.{stamp.nanosec:09d}{suffix}'
    msg.header.stamp = stamp
    return msg


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--scenario', required=True)
    ap.add_argument('--rate', type=float, default=20.0)
    ap.add_argument('--compressed', action='store_true')
    ap.add_argument('--width', type=int, default=160)
    ap.add_argument('--height', type=int, default=120)
    ap.add_argument('--topic', default='image')
    ap.add_argument('--wait-subscribers', type=float, default=20.0)
    args = ap.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node('synthetic_camera')
    topic = args.topic + ('/compressed' if args.compressed else '')
    pub = node.create_publisher(CompressedImage if args.compressed else Image, topic,
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + args.wait_subscribers
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let discovery settle on both sides
    rng = np.random.default_rng(0)
    index, period = 0, 1.0 / args.rate
    for seg in args.scenario.split(','):
        kind, value = seg.split(':')
        if kind == 'stall':
            time.sleep(float(value))
            continue
        for _ in range(int(value)):
            t0 = time.monotonic()
            pub.publish(make_msg(kind, rng, index, args.compressed, node.get_clock(),
                                 args.width, args.height))
            index += 1
            time.sleep(max(0.0, period - (time.monotonic() - t0)))
    print(f'published {index} frames', flush=True)
    # a big reliable frame may still be in retransmission: leaving now would lose it
    pub.wait_for_all_acked(Duration(seconds=5))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
