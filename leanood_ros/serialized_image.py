"""Read serialized `sensor_msgs/Image` and `CompressedImage` messages without rclpy.

The node subscribes with `raw=True` and gets the CDR bytes the middleware received; this reader
takes the header fields out of them and returns `data` as a zero-copy NumPy view, so no Python
message (and no copy of the pixels) is built per frame.  Only plain CDR (XCDR1, the encoding
every ROS 2 middleware uses for these types), little- or big-endian, is accepted: anything else,
and every length that does not fit the buffer, raises `FrameError` before a byte of `data` is
read or allocated.  The size caps and format checks stay with `decode_raw` / `decode_compressed`,
which take the view.
"""
from __future__ import annotations

from dataclasses import dataclass
import struct

import numpy as np

from .image_conversion import FrameError

# encapsulation identifier (first two bytes) -> struct byte order
_ENDIAN = {b'\x00\x00': '>', b'\x00\x01': '<'}
_ORIGIN = 4   # CDR aligns relative to the byte after the 4-byte encapsulation header
_PADDING = 3  # a sender may pad the payload to a multiple of 4 bytes


@dataclass(frozen=True)
class SerializedImage:
    """The fields of an Image (or a CompressedImage: `fmt` set) over its buffer."""

    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    data: np.ndarray          # uint8 view of the message buffer, never a copy
    height: int = 0
    width: int = 0
    encoding: str = ''
    is_bigendian: bool = False
    step: int = 0
    fmt: str | None = None     # CompressedImage's `format` (None for an Image)

    @property
    def stamp_ns(self) -> int:
        return self.stamp_sec * 1_000_000_000 + self.stamp_nanosec


class _Reader:
    def __init__(self, buf):
        try:
            self.buf = memoryview(buf).cast('B')
        except (TypeError, ValueError) as exc:
            raise FrameError(f'serialized image is not a byte buffer: {exc}') from exc
        head = bytes(self.buf[:2])
        if len(self.buf) < _ORIGIN or head not in _ENDIAN:
            raise FrameError(f'not a plain CDR message (encapsulation {head.hex() or "none"}, '
                             f'{len(self.buf)} bytes)')
        self.order = _ENDIAN[head]
        self.pos = _ORIGIN

    def _unpack(self, fmt: str, size: int):
        self.pos += -(self.pos - _ORIGIN) % size
        if self.pos + size > len(self.buf):
            raise FrameError(f'truncated message: {len(self.buf)} bytes, a field at byte '
                             f'{self.pos} needs {size}')
        (value,) = struct.unpack_from(self.order + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def uint32(self) -> int:
        return self._unpack('I', 4)

    def int32(self) -> int:
        return self._unpack('i', 4)

    def uint8(self) -> int:
        return self._unpack('B', 1)

    def _block(self, what: str) -> int:
        """Start of a length-prefixed block of `length` bytes that must lie in the buffer."""
        length = self.uint32()
        start = self.pos
        if length > len(self.buf) - start:
            raise FrameError(f'truncated message: {what} of {length} bytes at byte {start}, '
                             f'{len(self.buf) - start} left')
        self.pos += length
        return start, length

    def string(self, what: str) -> str:
        start, length = self._block(what)
        if length == 0:   # not written by ROS 2 middlewares, but unambiguous: empty
            return ''
        if self.buf[start + length - 1] != 0:
            raise FrameError(f'malformed message: {what} is not NUL-terminated')
        return bytes(self.buf[start:start + length - 1]).decode('utf-8', 'replace')

    def data(self) -> np.ndarray:
        start, length = self._block('data')
        if len(self.buf) - self.pos > _PADDING:
            raise FrameError(f'malformed message: {len(self.buf) - self.pos} bytes after the '
                             f'data')
        return np.frombuffer(self.buf, np.uint8, length, start)


def read_image(buf) -> SerializedImage:
    """Fields of a serialized `sensor_msgs/Image`; `data` a view of `buf`."""
    r = _Reader(buf)
    sec, nanosec, frame_id = r.int32(), r.uint32(), r.string('frame_id')
    height, width, encoding = r.uint32(), r.uint32(), r.string('encoding')
    is_bigendian, step = r.uint8(), r.uint32()
    return SerializedImage(sec, nanosec, frame_id, r.data(), height, width, encoding,
                           bool(is_bigendian), step)


def read_compressed_image(buf) -> SerializedImage:
    """Fields of a serialized `sensor_msgs/CompressedImage`; `data` a view of `buf`."""
    r = _Reader(buf)
    sec, nanosec, frame_id = r.int32(), r.uint32(), r.string('frame_id')
    fmt = r.string('format')
    return SerializedImage(sec, nanosec, frame_id, r.data(), fmt=fmt)
