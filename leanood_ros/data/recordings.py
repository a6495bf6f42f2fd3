"""One way to read camera recordings, whatever they are stored in (no ROS graph needed).

    with open_recording('data/duckietown/test/rain_udem1') as rec:
        for frame in rec:            # Frame(index, stamp_ns, image: DecodedImage, label)
            ...

Sources:
- rosbag2 recordings (.mcap or .db3, a bag directory or a single .mcap file), sensor_msgs/Image or
  CompressedImage, read with `rosbags`.  Labels ride in the bag on `LABEL_TOPIC`
  (std_msgs/String, same timestamp as the frame; 'in_distribution' or the name of the shift).
- a folder of images (sorted by name) with an optional `labels.csv` holding `frame,ood` and
  optionally `shift` columns (frame = file name or index).
- a video file (OpenCV), with an optional `<video>.labels.csv` beside it, indexed by frame number.

A label is None when unknown, 'in_distribution' for ID frames, or a shift name ('ood' when a
labels.csv has no shift column).
Bad input (missing path or topic, unreadable file, wrong format) raises RecordingError.
"""
from __future__ import annotations

from collections import Counter
import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..image_conversion import decode_compressed, decode_raw, DecodedImage, FrameError

IN_DISTRIBUTION = 'in_distribution'
UNNAMED_SHIFT = 'ood'   # an OOD frame whose labels say no shift name
LABEL_TOPIC = '/leanood/label'
DEFAULT_TOPIC = '/camera/image_raw'
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
VIDEO_SUFFIXES = ('.avi', '.mp4', '.mkv', '.mov', '.webm', '.m4v')
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')


class RecordingError(RuntimeError):
    pass


@dataclass
class Frame:
    index: int
    stamp_ns: int
    image: DecodedImage
    label: str | None = None

    @property
    def is_ood(self) -> bool | None:
        return None if self.label is None else self.label != IN_DISTRIBUTION


class Recording:
    """Base class: iterable of Frames, usable as a context manager."""

    path: Path
    _labels: dict   # frame key (index or bag timestamp) -> label

    def __iter__(self):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def label_counts(self) -> Counter:
        """Count how many frames carry each label (empty when the recording is unlabelled).

        Read without decoding a frame.
        """
        return Counter(self._labels.values())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name


def open_recording(path, topic: str | None = None) -> Recording:
    p = Path(path)
    if not p.exists():
        raise RecordingError(f'{p}: no such recording')
    if (p.is_dir() and (p / 'metadata.yaml').is_file()) or p.suffix in ('.mcap', '.db3'):
        return BagRecording(p, topic)
    if p.is_dir():
        return FolderRecording(p)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return VideoRecording(p)
    raise RecordingError(f'{p}: not a rosbag2 recording, image folder or video '
                         f'({", ".join(VIDEO_SUFFIXES)})')


# -- rosbag2 ----------------------------------------------------------------------------------
class BagRecording(Recording):
    def __init__(self, path: Path, topic: str | None = None):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
        self.path = Path(path)
        try:
            self._reader = AnyReader([self.path],
                                     default_typestore=get_typestore(Stores.ROS2_KILTED))
            self._reader.open()
        except Exception as exc:  # rosbags raises several types for unreadable bags
            raise RecordingError(f'{self.path}: cannot read rosbag2 recording: {exc}') from exc
        images = [c for c in self._reader.connections if c.msgtype in IMAGE_TYPES]
        if topic:
            self._conns = [c for c in images if c.topic == topic]
            if not self._conns:
                self.close()
                raise RecordingError(
                    f'{self.path}: no image topic {topic!r} (image topics: '
                    f'{sorted({c.topic for c in images}) or "none"})')
        else:
            topics = sorted({c.topic for c in images})
            if not topics:
                self.close()
                raise RecordingError(f'{self.path}: no sensor_msgs/Image or CompressedImage topic')
            chosen = DEFAULT_TOPIC if DEFAULT_TOPIC in topics else topics[0]
            self._conns = [c for c in images if c.topic == chosen]
        self.topic = self._conns[0].topic
        self.msgtype = self._conns[0].msgtype
        self._labels = self._read_labels()

    def _read_labels(self) -> dict:
        conns = [c for c in self._reader.connections if c.topic == LABEL_TOPIC]
        return {t: self._reader.deserialize(raw, c.msgtype).data
                for c, t, raw in self._reader.messages(connections=conns)} if conns else {}

    def __len__(self) -> int:
        return sum(c.msgcount for c in self._conns)

    def __iter__(self):
        for i, (conn, t, raw) in enumerate(self._reader.messages(connections=self._conns)):
            msg = self._reader.deserialize(raw, conn.msgtype)
            try:
                if conn.msgtype.endswith('CompressedImage'):
                    img = decode_compressed(msg.format, msg.data)
                else:
                    img = decode_raw(msg.encoding, msg.height, msg.width, msg.step,
                                     bool(msg.is_bigendian), msg.data)
            except FrameError as exc:
                raise RecordingError(f'{self.path}: frame {i} on {conn.topic}: {exc}') from exc
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            yield Frame(i, stamp or t, img, self._labels.get(t))

    def close(self) -> None:
        reader, self._reader = getattr(self, '_reader', None), None
        if reader is not None:
            reader.close()


# -- image folders ----------------------------------------------------------------------------
def read_labels_csv(path: Path, names: list | None = None) -> dict:
    """labels.csv -> {index: label}. `frame` is a file name (folders) or an index (videos)."""
    labels = {}
    by_name = {n: i for i, n in enumerate(names or [])}
    try:
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {'frame', 'ood'} <= set(reader.fieldnames):
                raise RecordingError(f'{path}: needs a header with columns frame,ood '
                                     f'(optionally shift), got {reader.fieldnames}')
            for row_no, row in enumerate(reader, start=2):
                key = row['frame'].strip()
                idx = by_name.get(key)
                if idx is None:
                    if not key.isdigit():
                        raise RecordingError(f'{path}:{row_no}: unknown frame {key!r}')
                    idx = int(key)
                ood = row['ood'].strip().lower()
                if ood not in ('0', '1', 'true', 'false'):
                    raise RecordingError(f'{path}:{row_no}: ood must be 0/1, got {row["ood"]!r}')
                is_ood = ood in ('1', 'true')
                labels[idx] = ((row.get('shift') or UNNAMED_SHIFT).strip() if is_ood
                               else IN_DISTRIBUTION)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordingError(f'{path}: cannot read labels: {exc}') from exc
    return labels


class FolderRecording(Recording):
    def __init__(self, path: Path, fps: float = 15.0):
        self.path = Path(path)
        self.files = sorted(f for f in self.path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise RecordingError(f'{self.path}: no images ({", ".join(IMAGE_SUFFIXES)})')
        self.fps = fps
        labels = self.path / 'labels.csv'
        self._labels = read_labels_csv(labels, [f.name for f in self.files]) \
            if labels.is_file() else {}

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self):
        for i, f in enumerate(self.files):
            img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise RecordingError(f'{f}: unreadable image')
            if img.dtype == np.uint16:
                img = (img >> 8).astype(np.uint8)
            order = 'mono' if img.ndim == 2 else ('bgra' if img.shape[2] == 4 else 'bgr')
            yield Frame(i, int(i * 1e9 / self.fps),
                        DecodedImage(img if img.ndim == 3 else img[..., None], order),
                        self._labels.get(i))


# -- video files ------------------------------------------------------------------------------
class VideoRecording(Recording):
    def __init__(self, path: Path):
        self.path = Path(path)
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise RecordingError(f'{self.path}: OpenCV cannot open this video')
        ok, _ = self._cap.read()
        if not ok:
            self._cap.release()
            raise RecordingError(f'{self.path}: video has no decodable frames')
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 30.0
        labels = self.path.with_name(self.path.name + '.labels.csv')
        self._labels = read_labels_csv(labels) if labels.is_file() else {}

    def __len__(self) -> int:
        return int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def __iter__(self):
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        i = 0
        while True:
            ok, img = self._cap.read()
            if not ok:
                return
            yield Frame(i, int(i * 1e9 / self.fps), DecodedImage(img, 'bgr'), self._labels.get(i))
            i += 1

    def close(self) -> None:
        self._cap.release()
