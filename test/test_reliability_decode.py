"""Reliability of frame decoding (issue 12).

Property-based fuzzing of decode_raw and decode_compressed, decompression bombs refused before
decoding, no other OpenCV decoder reachable.  Whatever the bytes, the result is a well-formed uint8
image or a FrameError.
"""
import resource
import struct
import time
import zlib

import cv2
from hypothesis import given, HealthCheck, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from fault_table import record
from helpers import bombs
from leanood_ros.image_conversion import (decode_compressed, decode_raw, FrameError,
                                          MAX_PIXELS, SUPPORTED_ENCODINGS)

# CI-friendly: a few hundred examples per property, a few seconds in all
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def check_image(img):
    px = img.pixels
    assert px.dtype == np.uint8 and px.ndim == 3 and px.shape[2] in (1, 3, 4)
    assert 0 < px.shape[0] * px.shape[1] <= MAX_PIXELS
    assert img.channel_order in ('rgb', 'bgr', 'rgba', 'bgra', 'mono')


raw_fields = st.fixed_dictionaries({
    'encoding': st.one_of(st.sampled_from(SUPPORTED_ENCODINGS),
                          st.sampled_from(['RGB8', ' bgr8 ', 'bayer_rggb8', '32FC1', '']),
                          st.text(max_size=60)),
    'height': st.one_of(st.integers(-2, 24), st.sampled_from([2 ** 31 - 1, 100000])),
    'width': st.one_of(st.integers(-2, 24), st.sampled_from([2 ** 31 - 1, 100000])),
    'step': st.integers(-1, 120),
    'is_bigendian': st.booleans(),
    'data': st.binary(max_size=3000),
})


@FUZZ
@given(raw_fields)
def test_fuzz_decode_raw(fields):
    try:
        img = decode_raw(**fields)
    except FrameError as exc:
        assert len(str(exc)) < 300   # untrusted strings are shortened
        return
    check_image(img)
    assert img.pixels.shape[:2] == (fields['height'], fields['width'])


@FUZZ
@given(st.sampled_from(['rgb8', 'mono8', 'mono16', 'yuyv', 'bgra8']), st.integers(1, 12),
       st.integers(1, 12), st.integers(0, 7), st.integers(-20, 20))
def test_fuzz_raw_size_must_match_the_header(encoding, height, width, pad, extra):
    width += width % 2   # yuyv needs even widths
    bpp = {'rgb8': 3, 'mono8': 1, 'mono16': 2, 'yuyv': 2, 'bgra8': 4}[encoding]
    step = width * bpp + pad
    full = step * height
    data = bytes(max(0, full + extra))
    try:
        decode_raw(encoding, height, width, step, False, data)
    except FrameError:
        assert len(data) not in (full, full - pad)
        return
    assert len(data) in (full, full - pad)   # with or without the last row's padding


def valid_compressed(kind, h, w, mono, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w) if mono else (h, w, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, int(seed % 2)] if kind == 'jpeg' else []
    return cv2.imencode('.jpg' if kind == 'jpeg' else '.png', img, params)[1].tobytes()


@FUZZ
@given(st.sampled_from(['jpeg', 'png']), st.integers(1, 40), st.integers(1, 40), st.booleans(),
       st.integers(0, 10 ** 6), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                                         max_size=6),
       st.one_of(st.none(), st.integers(1, 4000)),
       st.sampled_from(['', 'jpeg', 'png', 'bgr8; jpeg compressed bgr8', 'rgb8; png compressed',
                        'jpg', 'tiff', 'png jpeg']))
def test_fuzz_decode_compressed(kind, h, w, mono, seed, flips, cut, fmt):
    data = bytearray(valid_compressed(kind, h, w, mono, seed))
    for pos, value in flips:        # corrupt headers and data alike
        data[pos % len(data)] = value
    if cut is not None:
        data = data[:cut]
    try:
        img = decode_compressed(fmt, bytes(data))
    except FrameError as exc:
        assert len(str(exc)) < 300
        return
    check_image(img)
    assert fmt == '' or kind in fmt or (kind == 'jpeg' and fmt == 'jpg')


@FUZZ
@given(st.sampled_from([b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'']), st.binary(max_size=400),
       st.sampled_from(['', 'jpeg', 'png']))
def test_fuzz_decode_compressed_random_bytes(magic, tail, fmt):
    try:
        check_image(decode_compressed(fmt, magic + tail))
    except FrameError:
        pass


@pytest.mark.parametrize('make,declared', [
    (lambda: bombs.tiny_png_bomb(), '100000x100000'),
    (lambda: bombs.jpeg_bomb(), '60000x60000'),
    (lambda: bombs.real_png_bomb(), '30000x30000'),
    (lambda: bombs.png(5000, 4000, b''), '5000x4000'),   # just over the 16.7 MP cap
])
def test_decompression_bombs_are_refused_before_decoding(make, declared):
    data = make()
    fmt = 'jpeg' if data[:2] == b'\xff\xd8' else 'png'
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with pytest.raises(FrameError, match='too large'):
        decode_compressed(fmt, data)
    ms = (time.perf_counter() - t) * 1e3
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 20, f'peak RSS grew by {grown_mb:.0f} MB'
    record(f'{fmt} bomb, {len(data)} bytes declaring {declared} (decode_compressed)',
           'FrameError before decoding, no allocation',
           f'FrameError "too large" in {ms:.2f} ms, peak RSS +{grown_mb:.1f} MB')


@pytest.mark.parametrize('ext,args', [('.bmp', ()), ('.tiff', ()), ('.pfm', ('float',)),
                                      ('.webp', ()), ('.pgm', ()), ('.hdr', ('float',))])
@pytest.mark.parametrize('fmt', ['', 'jpeg', 'png'])
def test_no_other_opencv_decoder_is_reachable(ext, args, fmt):
    img = np.full((8, 8, 3), 1e20 if args else 100, np.float32 if args else np.uint8)
    if ext == '.pgm':
        img = img[..., 0]
    ok, buf = cv2.imencode(ext, img)
    assert ok and cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) is not None   # OpenCV would decode
    with pytest.raises(FrameError, match='neither jpeg nor png'):
        decode_compressed(fmt, buf.tobytes())


def test_format_must_match_the_bytes():
    png = valid_compressed('png', 8, 8, False, 0)
    jpg = valid_compressed('jpeg', 8, 8, False, 0)
    for fmt, data in (('jpeg', png), ('bgr8; jpeg compressed bgr8', png), ('png', jpg)):
        with pytest.raises(FrameError, match='declares'):
            decode_compressed(fmt, data)
    assert decode_compressed('rgb8; png compressed', png).pixels.shape == (8, 8, 3)
    assert decode_compressed('bgr8; jpeg compressed bgr8', jpg).channel_order == 'bgr'
    record('compressed frame whose bytes do not match its format (png sent as "jpeg", BMP/TIFF/'
           'PFM/WebP/PGM/HDR as jpeg, png or "")', 'rejected, no other decoder reached',
           'FrameError for all 21 combinations; OpenCV would have decoded every one')


def test_decoded_depth_and_channels_are_normalised():
    rgba16 = np.random.default_rng(0).integers(0, 65535, (6, 5, 4), dtype=np.uint16)
    img = decode_compressed('png', cv2.imencode('.png', rgba16)[1].tobytes())
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (6, 5, 3)
    np.testing.assert_array_equal(img.pixels, (rgba16[..., :3] >> 8).astype(np.uint8))
    rows = b''.join(b'\0' + bytes([200, 7] * 4) for _ in range(3))   # grey 200, alpha 7
    grey_alpha = decode_compressed('png', bombs.png(4, 3, zlib.compress(rows), colour_type=4))
    assert grey_alpha.channel_order == 'mono' and grey_alpha.pixels.shape == (3, 4, 1)
    assert (grey_alpha.pixels == 200).all()
    grey_jpeg = cv2.imencode('.jpg', np.zeros((4, 4), np.uint8))[1].tobytes()
    assert decode_compressed('jpeg', grey_jpeg).pixels.shape == (4, 4, 1)


def test_raw_data_larger_than_its_header_is_rejected():
    with pytest.raises(FrameError, match='does not match the header'):
        decode_raw('rgb8', 4, 4, 12, False, bytes(12 * 4 + 1))
    with pytest.raises(FrameError, match='does not match the header'):
        decode_raw('rgb8', 2, 2, 6, False, bytes(640 * 480 * 3))  # a 640x480 frame, 2x2 header
    record('raw frame whose header is smaller than its data (2x2 header, 640x480 data)',
           'rejected and counted', 'FrameError "data size ... does not match the header"')


def test_long_strings_are_shortened_in_messages():
    enc = 'x' * 1_000_000
    with pytest.raises(FrameError) as raw:
        decode_raw(enc, 2, 2, 6, False, bytes(12))
    with pytest.raises(FrameError) as comp:
        decode_compressed('tiff' + enc, b'II*\0')
    for exc in (raw, comp):
        assert len(str(exc.value)) < 200 and "xxx...'" in str(exc.value)
    record('1 MB encoding / format string', 'echoed at most 40 characters',
           f'messages of {len(str(raw.value))} and {len(str(comp.value))} characters')


def test_jpeg_header_parser_skips_app_segments():
    data = bytearray(valid_compressed('jpeg', 10, 12, False, 1))
    app = b'\xff\xe1' + struct.pack('>H', 2 + 300) + bytes(300)   # a 300-byte APP1 segment
    data[2:2] = app
    assert decode_compressed('jpeg', bytes(data)).pixels.shape == (10, 12, 3)
