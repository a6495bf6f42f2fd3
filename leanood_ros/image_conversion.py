"""Camera frames from ROS message fields to NumPy arrays, without rclpy or cv_bridge.

`decode_raw` takes the fields of a `sensor_msgs/Image` and returns a *view* of the message
buffer wherever the layout allows it (row padding is sliced away, channels are not reordered
here): the preprocessor resizes first and reorders colours on the small image, which is far
cheaper than converting a full 640x480 frame.  `decode_compressed` decodes jpeg/png bytes
after reading their size from the PNG IHDR / JPEG SOF header: a decompression bomb is refused
before a byte is allocated, and no other OpenCV decoder (BMP, TIFF, PFM, WebP...) is reachable.
Given a `min_size`, a big JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's scaled inverse
DCT, a block average) as long as the result stays at least that size.
Every malformed frame raises `FrameError` with a reason; nothing else escapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import struct

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
# 16.7 MP covers 4K UHD; its decoded RGB (50 MB) keeps the node's peak memory below twice its
# steady state.
MAX_PIXELS = 4096 * 4096
# Encoding/format strings come from the network: never echo more than this into logs.
MAX_ECHO = 40
COMPRESSED_FORMATS = ('jpeg', 'png')
_MAGIC = {'jpeg': b'\xff\xd8\xff', 'png': b'\x89PNG\r\n\x1a\n'}
# JPEG start-of-frame markers (SOF0-15 less DHT C4, JPG C8, DAC CC) and markers without length
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
# scale denominator -> OpenCV's reduced-resolution JPEG decode, (mono, colour)
_REDUCED = {8: (cv2.IMREAD_REDUCED_GRAYSCALE_8, cv2.IMREAD_REDUCED_COLOR_8),
            4: (cv2.IMREAD_REDUCED_GRAYSCALE_4, cv2.IMREAD_REDUCED_COLOR_4),
            2: (cv2.IMREAD_REDUCED_GRAYSCALE_2, cv2.IMREAD_REDUCED_COLOR_2),
            1: (cv2.IMREAD_GRAYSCALE, cv2.IMREAD_COLOR)}


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


def shorten(text, limit: int = MAX_ECHO) -> str:
    """`repr` of an untrusted string, cut to `limit` characters."""
    text = str(text)
    return repr(text if len(text) <= limit else text[:limit] + '...')


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
        raise FrameError(f'unsupported encoding {shorten(encoding)} (supported: '
                         f"{', '.join(SUPPORTED_ENCODINGS)})")
    row_bytes = width * bpp
    if step < row_bytes:
        raise FrameError(f'step {step} is smaller than width*bytes_per_pixel = {row_bytes}')
    buf = _as_uint8_buffer(data)
    # The last row need not carry its padding; anything shorter than that is truncated, anything
    # longer does not match its header (a sender that got its size wrong).
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise FrameError(f'truncated data: {buf.size} bytes, {needed} needed for '
                         f'{width}x{height} {enc} with step {step}')
    if buf.size not in (needed, step * height):
        raise FrameError(f'data size {buf.size} does not match the header: {width}x{height} '
                         f'{enc} with step {step} is {step * height} bytes')
    # rows over the buffer, padding skipped by the stride (np.ndarray: as_strided's Python
    # wrapper costs more than the rest of the decode per frame); read-only like the message
    rows = np.ndarray((height, row_bytes), np.uint8, buf, strides=(step, 1))
    rows.flags.writeable = False
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


def decode_compressed(fmt: str, data, min_size: tuple | None = None) -> DecodedImage:
    """Decode a `sensor_msgs/CompressedImage` (jpeg or png) to BGR or mono uint8 pixels.

    `fmt` is the message's `format` ("jpeg", "png", "bgr8; jpeg compressed bgr8", ...; empty:
    told by the bytes); the bytes' signature must match it.  16-bit and alpha are dropped while
    decoding, so the result is always 8-bit mono or BGR of the size the header declares, or
    for a JPEG with `min_size` (width, height): the header size divided by the largest of 2, 4
    or 8 (rounded up) that keeps both sides at least `min_size`.
    """
    kind = compressed_kind(fmt)
    buf = _as_uint8_buffer(data)
    if buf.size == 0:
        raise FrameError('empty compressed image')
    head = bytes(buf[:8])
    actual = next((k for k, magic in _MAGIC.items() if head.startswith(magic)), None)
    if actual is None:
        raise FrameError(f'undecodable compressed image: {buf.size} bytes that are neither jpeg '
                         f'nor png (format {shorten(fmt)})')
    if kind is not None and actual != kind:
        raise FrameError(f'format {shorten(fmt)} declares {kind} but the data is {actual}')
    width, height, mono = (_png_header if actual == 'png' else _jpeg_header)(buf)
    if width <= 0 or height <= 0:
        raise FrameError(f'zero-size {actual} image ({width}x{height})')
    if width * height > MAX_PIXELS:
        raise FrameError(f'image too large ({width}x{height} {actual}, at most {MAX_PIXELS} '
                         f'pixels)')
    scale = 1
    if actual == 'jpeg' and min_size is not None:
        scale = next(f for f in _REDUCED
                     if f == 1 or (width // f >= min_size[0] and height // f >= min_size[1]))
    flags = _REDUCED[scale][0 if mono else 1] | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise FrameError(f'undecodable {actual} image: {str(exc).strip()[-80:]}') from exc
    if img is None or img.size == 0:
        raise FrameError(f'undecodable {actual} image ({buf.size} bytes)')
    expected = (-(-height // scale), -(-width // scale))
    if img.dtype != np.uint8 or img.shape != (expected if mono else (*expected, 3)):
        raise FrameError(f'{actual} decoded to {img.dtype} {img.shape}, header said {width}x'
                         f'{height}' + (f' (1/{scale} scale)' if scale > 1 else ''))
    return DecodedImage(img[..., None], 'mono') if mono else DecodedImage(img, 'bgr')


def compressed_kind(fmt: str) -> str | None:
    """'jpeg' or 'png' from a CompressedImage `format`; None when empty (told by the bytes)."""
    words = set((fmt or '').lower().replace(';', ' ').split())
    kinds = {k for k in COMPRESSED_FORMATS if k in words} | ({'jpeg'} if 'jpg' in words else set())
    if not words:
        return None
    if len(kinds) != 1:
        raise FrameError(f'unsupported compressed format {shorten(fmt)} (jpeg or png)')
    return kinds.pop()


def _png_header(buf: np.ndarray) -> tuple:
    """(width, height, mono) from the IHDR chunk, which the PNG standard puts first."""
    if buf.size < 33 or bytes(buf[12:16]) != b'IHDR':
        raise FrameError('undecodable png: no IHDR chunk')
    width, height, depth, colour = struct.unpack('>IIBB', bytes(buf[16:26]))
    if depth not in (1, 2, 4, 8, 16) or colour not in (0, 2, 3, 4, 6):
        raise FrameError(f'undecodable png: bit depth {depth}, colour type {colour}')
    return width, height, colour in (0, 4)


def _jpeg_header(buf: np.ndarray) -> tuple:
    """(width, height, mono) from the first start-of-frame segment."""
    data, i = bytes(buf[:min(buf.size, 1 << 20)]), 2  # headers live in the first bytes
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise FrameError(f'undecodable jpeg: no marker at byte {i}')
        marker = data[i + 1]
        if marker == 0xFF:   # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            break
        (length,) = struct.unpack('>H', data[i + 2:i + 4])
        if marker in _SOF and length >= 8 and i + 10 <= len(data):
            _, height, width, components = struct.unpack('>BHHB', data[i + 4:i + 10])
            if components not in (1, 3, 4):
                raise FrameError(f'undecodable jpeg: {components} components')
            return width, height, components == 1
        if length < 2:
            break
        i += 2 + length
    raise FrameError('undecodable jpeg: no frame header before the image data')


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
