"""Decompression bombs for the reliability tests.

Small compressed frames that declare (or really decode to) huge images.  Built in milliseconds,
without holding the decoded image in memory.
"""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes, colour_type: int = 2) -> bytes:
    """PNG bytes with the given IHDR (8-bit; colour type 2: RGB) and IDAT stream."""
    ihdr = struct.pack('>IIBBBBB', width, height, 8, colour_type, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', idat)
            + _chunk(b'IEND', b''))


def tiny_png_bomb(width: int = 100000, height: int = 100000) -> bytes:
    """Make a 69-byte PNG that declares width x height pixels (its data stream is cut short)."""
    return png(width, height, zlib.compress(b'\0' * 64))


def real_png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """Make a complete, valid PNG of a black width x height RGB image.

    30000x30000: 2.6 GB decoded, about 3.2 MB encoded.  Every row is the same deflate block after
    a full flush, so the stream is assembled from one compressed row; the image is all zero
    bytes, so its Adler-32 is (n mod 65521) << 16 | 1.
    """
    row = bytes(1 + 3 * width)          # filter byte 0 + black pixels
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(row) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush(zlib.Z_FINISH)
    n = len(row) * height
    stream = b'\x78\xda' + block * height + end + struct.pack('>I', (n % 65521) << 16 | 1)
    return png(width, height, stream)


def jpeg_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """Make a small real JPEG whose start-of-frame header is patched to declare width x height."""
    data = bytearray(cv2.imencode('.jpg', np.full((16, 16, 3), 128, np.uint8))[1].tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)
