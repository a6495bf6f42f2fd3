"""Write camera frames (and their labels) as a rosbag2 recording with `rosbags`.

Frames go to `topic` as sensor_msgs/CompressedImage (jpeg, like most robot camera streams) or
sensor_msgs/Image (rgb8); each frame's label goes to LABEL_TOPIC at the same timestamp.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .recordings import DEFAULT_TOPIC, LABEL_TOPIC


class BagWriter:
    def __init__(self, path, topic: str = DEFAULT_TOPIC, compressed: bool = True,
                 jpeg_quality: int = 85, frame_id: str = 'camera', storage: str = 'mcap'):
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
        self.path = Path(path)
        self.ts = get_typestore(Stores.ROS2_KILTED)
        self.compressed, self.quality, self.frame_id = compressed, int(jpeg_quality), frame_id
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self._w = Writer(self.path, version=9, storage_plugin=plugin)
        self._w.open()
        self.msgtype = ('sensor_msgs/msg/CompressedImage' if compressed
                        else 'sensor_msgs/msg/Image')
        self._img = self._w.add_connection(topic, self.msgtype, typestore=self.ts)
        self._lab = self._w.add_connection(LABEL_TOPIC, 'std_msgs/msg/String', typestore=self.ts)
        self.count = 0

    def _header(self, stamp_ns: int):
        T = self.ts.types
        return T['std_msgs/msg/Header'](
            stamp=T['builtin_interfaces/msg/Time'](sec=int(stamp_ns // 1_000_000_000),
                                                   nanosec=int(stamp_ns % 1_000_000_000)),
            frame_id=self.frame_id)

    def write(self, rgb: np.ndarray, stamp_ns: int, label: str | None = None) -> None:
        T = self.ts.types
        if self.compressed:
            ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(rgb[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            msg = T['sensor_msgs/msg/CompressedImage'](header=self._header(stamp_ns),
                                                       format='jpeg', data=buf.reshape(-1))
        else:
            h, w = rgb.shape[:2]
            msg = T['sensor_msgs/msg/Image'](header=self._header(stamp_ns), height=h, width=w,
                                             encoding='rgb8', is_bigendian=0, step=w * 3,
                                             data=np.ascontiguousarray(rgb).reshape(-1))
        self._w.write(self._img, stamp_ns, self.ts.serialize_cdr(msg, self.msgtype))
        if label is not None:
            self._w.write(self._lab, stamp_ns, self.ts.serialize_cdr(
                T['std_msgs/msg/String'](data=label), 'std_msgs/msg/String'))
        self.count += 1

    def close(self) -> None:
        self._w.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
