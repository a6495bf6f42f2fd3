"""Camera frames from ROS message fields to NumPy arrays, without rclpy or cv_bridge.

`decode_raw` takes the fields of a `sensor_msgs/Image` and returns a *view* of the message
buffer wherever the layout allows it (row padding is sliced away, channels are not reordered
here): the preprocessor resizes first and reorders colours on the small image, which is far
cheaper than converting a full 640x480 frame.  `decode_compressed` decodes jpeg/png bytes.
Every malformed frame raises `FrameError` with a reason; nothing else escapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# encoding -> (bytes per pixel, channel order of the decoded array)
_PACKED = {
    'rgb8': (3, 'rgb'),
    'bgr8': (3, 'bgr'),
    'rgba8': (4, 'rgba'),
    'bgra8': (4, 'bgra'),
    'mono8': (1, 'mono'),
    '8uc1': (1, 'mono'),
    '8uc3': (3, 'bgr'),  # OpenCV's convention for untyped 3-channel images
    'mono16': (2, 'mono'),
    '16uc1': (2, 'mono'),
}
# packed 4:2:2 formats, 2 bytes per pixel, converted with OpenCV
_YUV422 = {
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,   # ROS' "yuv422" is UYVY byte order
    'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2,
    'yuyv': cv2.COLOR_YUV2RGB_YUY2,
}
SUPPORTED_ENCODINGS = tuple(sorted(set(_PACKED) | set(_YUV422)))
# Frames larger than this are refused outright: a corrupt header must not make us allocate GBs.
MAX_PIXELS = 8192 * 8192


class FrameError(ValueError):
    """A camera frame that cannot be judged; the message says why."""


@dataclass(frozen=True)
class DecodedImage:
    """An HxWxC uint8 array (C is 1, 3 or 4) and the order of its channels."""

    pixels: np.ndarray
    channel_order: str  # 'rgb', 'bgr', 'rgba', 'bgra' or 'mono'

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def decode_raw(encoding: str, height: int, width: int, step: int, is_bigendian: bool,
               data) -> DecodedImage:
    """Return the pixels of a raw `sensor_msgs/Image` as a (mostly zero-copy) view."""
    enc = (encoding or '').strip().lower()
    if height <= 0 or width <= 0:
        raise FrameError(f'zero-size image ({width}x{height})')
    if height * width > MAX_PIXELS:
        raise FrameError(f'image too large ({width}x{height})')
    if enc in _PACKED:
        bpp, order = _PACKED[enc]
    elif enc in _YUV422:
        bpp, order = 2, 'rgb'
        if width % 2:
            raise FrameError(f'{enc} needs an even width, got {width}')
    else:
        raise FrameError(f"unsupported encoding '{encoding}' (supported: "
                         f"{', '.join(SUPPORTED_ENCODINGS)})")
    row_bytes = width * bpp
    if step < row_bytes:
        raise FrameError(f'step {step} is smaller than width*bytes_per_pixel = {row_bytes}')
    buf = _as_uint8_buffer(data)
    # The last row need not carry its padding; anything shorter than that is truncated.
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise FrameError(f'truncated data: {buf.size} bytes, {needed} needed for '
                         f'{width}x{height} {enc} with step {step}')
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1),
                                           writeable=False)
    if enc in _YUV422:
        yuv = np.ascontiguousarray(rows).reshape(height, width, 2)
        return DecodedImage(cv2.cvtColor(yuv, _YUV422[enc]), 'rgb')
    if bpp == 2:  # 16-bit mono: keep the 8 most significant bits
        dtype = np.dtype('>u2' if is_bigendian else '<u2')
        mono16 = rows.view(dtype) if rows.flags['C_CONTIGUOUS'] else \
            np.ascontiguousarray(rows).view(dtype)
        return DecodedImage((mono16 >> 8).astype(np.uint8)[..., None], 'mono')
    channels = bpp
    return DecodedImage(rows.reshape(height, width, channels), order)


def decode_compressed(fmt: str, data) -> DecodedImage:
    """Decode a `sensor_msgs/CompressedImage` (jpeg or png) to BGR or mono pixels."""
    f = (fmt or '').lower()
    if f and not any(k in f for k in ('jpeg', 'jpg', 'png')):
        raise FrameError(f"unsupported compressed format '{fmt}' (jpeg or png)")
    buf = _as_uint8_buffer(data)
    if buf.size == 0:
        raise FrameError('empty compressed image')
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise FrameError(f'undecodable compressed image ({buf.size} bytes, format {fmt!r})')
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return DecodedImage(img[..., None], 'mono')
    return DecodedImage(img, {3: 'bgr', 4: 'bgra'}.get(img.shape[2], 'bgr'))


def from_array(pixels: np.ndarray, channel_order: str = 'rgb') -> DecodedImage:
    """Wrap an HxW or HxWxC uint8 array (e.g. from a dataset reader) as a DecodedImage."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise FrameError(f'expected HxWxC uint8 pixels, got {pixels.dtype} {pixels.shape}')
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise FrameError('zero-size image')
    return DecodedImage(pixels, channel_order)


def to_rgb(image: DecodedImage) -> np.ndarray:
    """Full-resolution HxWx3 RGB copy (used offline; the runtime path converts after resizing)."""
    return convert_channels(image.pixels, image.channel_order, 'rgb')


def convert_channels(pixels: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Reorder/expand channels from `src` order to 'rgb' or 'bgr'."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if src == 'mono':
        return np.repeat(pixels[..., :1], 3, axis=2)
    if src in ('rgba', 'bgra'):
        pixels, src = pixels[..., :3], src[:3]
    if src not in ('rgb', 'bgr') or dst not in ('rgb', 'bgr'):
        raise FrameError(f'cannot convert channel order {src} to {dst}')
    if src != dst:
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels)


def _as_uint8_buffer(data) -> np.ndarray:
    """Zero-copy uint8 view of bytes, bytearray, array.array or a NumPy array."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise FrameError(f'image data is not a byte buffer: {exc}') from exc
