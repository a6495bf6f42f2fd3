"""`camera_replay`: plays a recording (rosbag2, image folder or video) as a camera.

Publishes sensor_msgs/Image on `image` (or CompressedImage on `image/compressed`) with fresh header
stamps, at the recorded rate or a given one, optionally looping, optionally injecting a shift
(e.g. rain) after some seconds so a monitor can be seen reacting without recording anything.
Each frame's label (known from the recording, or the injected shift) is published on
`camera_replay/label` as a std_msgs/Header: the frame's stamp, and the label in frame_id.
"""
from __future__ import annotations

from pathlib import Path
import sys
import time

import cv2
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .ros_common import run_node
from ..data.recordings import open_recording, RecordingError
from ..image_conversion import to_rgb

SAMPLE = 'sample'
UNKNOWN = 'unknown'
ACK_TIMEOUT_S = 10.0
PARAMETERS = (   # name, default, description (all read-only)
    ('recording', SAMPLE, "Recording to play: bag, image folder, video, or 'sample' (the "
                          'shipped sample).'),
    ('bag_topic', '', 'Image topic inside a bag (default: /camera/image_raw or the only image '
                      'topic).'),
    ('rate', 0.0, 'Frames per second; 0 = the recorded rate.'),
    ('loop', False, 'Start again at the end instead of stopping.'),
    ('compressed', False, 'Publish CompressedImage (jpeg) on image/compressed.'),
    ('frame_id', 'camera', 'header.frame_id of published frames.'),
    ('shift', '', 'Shift to inject live (rain, dark, fog, glare, blur, noise, snow); empty = '
                  'none.'),
    ('shift_after_s', 5.0, 'Seconds of playback before the injected shift starts.'),
    ('wait_for_subscribers', 0, 'Hold playback until this many subscriptions are matched on '
                                'the image topic and have acknowledged the first frame (0 = '
                                'start at once).'),
    ('best_effort', False, 'Publish with best-effort QoS.'),
)


def sample_recording() -> Path:
    """Return the small recording shipped with the package (installed share, else checkout)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        p = Path(get_package_share_directory('leanood_ros')) / 'samples' / 'duckietown_rain'
        if p.exists():
            return p
    except Exception:
        pass
    return Path(__file__).resolve().parents[2] / 'samples' / 'duckietown_rain'


class CameraReplay(Node):
    def __init__(self, **kwargs):
        super().__init__('camera_replay', **kwargs)

        v = {name: self.declare_parameter(name, default, ParameterDescriptor(
            description=description, read_only=True)).value
            for name, default, description in PARAMETERS}
        path, topic, rate, shift = v['recording'], v['bag_topic'], v['rate'], v['shift']
        self.loop, self.compressed, self.frame_id = v['loop'], v['compressed'], v['frame_id']
        self.shift_after, self.wait_subscribers = v['shift_after_s'], v['wait_for_subscribers']
        best_effort = v['best_effort']
        self.jpeg_quality = 85

        self.path = sample_recording() if path == SAMPLE else Path(path)
        self.recording = open_recording(self.path, topic or None)  # RecordingError if bad
        if len(self.recording) == 0:
            raise RecordingError(f'{self.path}: recording has no frames')
        self.shift = None
        if shift:
            from ..data.shifts import Shift
            self.shift = Shift(shift, seed=0)  # ValueError names the known shifts
        self.period = 1.0 / rate if rate > 0 else self._recorded_period()
        if rate < 0 or not 0.001 <= self.period <= 60:
            raise ValueError(f'rate must be >= 0 and give 0.017..1000 fps, got {rate}')

        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                         else ReliabilityPolicy.RELIABLE)
        self.pub = (self.create_publisher(CompressedImage, 'image/compressed', qos)
                    if self.compressed else self.create_publisher(Image, 'image', qos))
        self.pub_label = self.create_publisher(Header, 'camera_replay/label', 50)
        self.frames = iter(self.recording)
        self.close = self.recording.close
        self.sent = 0
        self.started = None
        self._last_sent = None   # monotonic time of the last frame published
        self.finished = False
        self.timer = self.create_timer(self.period, self._tick)
        extras = (f', {shift} after {self.shift_after:g} s' if shift else '') + \
            (', looping' if self.loop else '')
        self.get_logger().info(
            f'playing {self.path} ({len(self.recording)} frames) on {self.pub.topic_name} at '
            f'{1 / self.period:.1f} fps{extras}')

    def _recorded_period(self) -> float:
        stamps = []
        for frame in self.recording:
            stamps.append(frame.stamp_ns)
            if len(stamps) >= 30:
                break
        diffs = np.diff(stamps)
        diffs = diffs[diffs > 0]
        return float(np.median(diffs)) / 1e9 if diffs.size else 1.0 / 15.0

    def _tick(self) -> None:
        if self.finished:
            return
        if self.started is None:
            if self.pub.get_subscription_count() < self.wait_subscribers:
                return
            self.started = time.monotonic()
        try:
            frame = next(self.frames)
        except StopIteration:
            if not self.loop:
                self.finished = True
                self.get_logger().info(f'finished: {self.sent} frames published')
                return
            self.frames = iter(self.recording)
            frame = next(self.frames)
        rgb, label = to_rgb(frame.image), frame.label
        if self.shift is not None and time.monotonic() - self.started >= self.shift_after:
            rgb, label = self.shift(rgb), self.shift.name
        header = Header(frame_id=self.frame_id, stamp=self.get_clock().now().to_msg())
        self.pub.publish(self._message(header, rgb))
        self.pub_label.publish(Header(stamp=header.stamp,
                                      frame_id=label if label is not None else UNKNOWN))
        self.sent += 1
        now = time.monotonic()
        # a late tick (this process starved, a chunk of the bag decoded) must not be followed at
        # once by the next one, on the timer's schedule: a camera keeps its frame spacing, it
        # does not catch up in bursts (a subscriber that keeps the newest frame would skip one)
        if self._last_sent is not None and now - self._last_sent > 1.5 * self.period:
            self.timer.reset()
        self._last_sent = now
        if self.sent == 1 and self.wait_subscribers > 0:
            self._first_frame_acknowledged()

    def _first_frame_acknowledged(self) -> None:
        """Hold playback until every matched subscriber has acknowledged the first frame.

        A matched count is only the publisher's side of the match: a subscriber that has not
        matched this publisher yet drops the frame, gets it again later, after newer ones, and a
        depth-1 subscription then discards it.  An acknowledgement proves both sides (reliable
        QoS; best effort has no acknowledgements and returns at once).
        """
        if not self.pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)):
            self.get_logger().warning(f'the first frame was not acknowledged by every subscriber '
                                      f'within {ACK_TIMEOUT_S:g} s; playing on')
        # the wait overran the timer: without a reset the next two frames would leave at once
        self.timer.reset()

    def _message(self, header, rgb):
        if self.compressed:
            msg = CompressedImage(header=header, format='jpeg')
            msg.data = cv2.imencode('.jpg', rgb[..., ::-1],
                                    [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])[1].tobytes()
            return msg
        h, w = rgb.shape[:2]
        msg = Image(header=header, height=h, width=w, encoding='rgb8', is_bigendian=0, step=w * 3)
        msg.data = rgb.tobytes()
        return msg


def _play(node) -> None:
    """Spin until the recording ends (or forever when looping), then let the last frames leave."""
    while rclpy.ok() and not node.finished:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.3)


def usage() -> str:
    rows = '\n'.join(f'  {name:<22}{default!r:<10} {text}' for name, default, text in PARAMETERS)
    return (f'usage: camera_replay [--ros-args -p NAME:=VALUE ...]\n\n{__doc__.strip()}\n\n'
            f'parameters (name, default, meaning):\n{rows}\n')


def main(args=None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    user_args = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    if {'-h', '--help'} & set(user_args):
        print(usage())
        return 0
    return run_node('camera_replay', CameraReplay, (RecordingError,), spin=_play, args=args)


if __name__ == '__main__':
    sys.exit(main())
