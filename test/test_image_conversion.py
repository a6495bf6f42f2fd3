import array

import cv2
import numpy as np
import pytest

from leanood_ros.image_conversion import (decode_compressed, decode_raw, FrameError, from_array,
                                          to_rgb)

H, W = 6, 8


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def pad_rows(pixels_bytes_per_row: np.ndarray, pad: int) -> bytes:
    rows = pixels_bytes_per_row.reshape(H, -1)
    return np.concatenate([rows, np.full((H, pad), 0xAB, np.uint8)], axis=1).tobytes()


def encode(rgb, encoding):
    """Build reference encodings independently of the decoder (via OpenCV where relevant)."""
    if encoding == 'rgb8':
        return rgb
    if encoding == 'bgr8':
        return rgb[..., ::-1]
    if encoding == 'rgba8':
        return np.dstack([rgb, np.full((H, W), 7, np.uint8)])
    if encoding == 'bgra8':
        return np.dstack([rgb[..., ::-1], np.full((H, W), 7, np.uint8)])
    raise ValueError(encoding)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('pad', [0, 5])
@pytest.mark.parametrize('container', [bytes, array.array])
def test_colour_encodings_with_padding(rgb, encoding, pad, container):
    px = encode(rgb, encoding)
    data = pad_rows(np.ascontiguousarray(px), pad)
    data = array.array('B', data) if container is array.array else data
    img = decode_raw(encoding, H, W, px.shape[2] * W + pad, False, data)
    np.testing.assert_array_equal(to_rgb(img), rgb)


def test_rgb8_without_padding_is_zero_copy(rgb):
    data = bytearray(rgb.tobytes())
    img = decode_raw('rgb8', H, W, W * 3, False, data)
    data[0] ^= 0xFF
    assert img.pixels[0, 0, 0] == rgb[0, 0, 0] ^ 0xFF  # a view of the message buffer


@pytest.mark.parametrize('pad', [0, 3])
def test_mono8(pad):
    mono = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    img = decode_raw('mono8', H, W, W + pad, False, pad_rows(mono, pad))
    out = to_rgb(img)
    assert out.shape == (H, W, 3)
    np.testing.assert_array_equal(out[..., 1], mono)


@pytest.mark.parametrize('bigendian', [False, True])
@pytest.mark.parametrize('pad', [0, 4])
def test_mono16_both_endiannesses(bigendian, pad):
    mono16 = (np.arange(H * W, dtype=np.uint16) * 1000).reshape(H, W)
    raw = mono16.astype('>u2' if bigendian else '<u2').view(np.uint8).reshape(H, W * 2)
    img = decode_raw('mono16', H, W, W * 2 + pad, bigendian, pad_rows(raw, pad))
    np.testing.assert_array_equal(img.pixels[..., 0], (mono16 >> 8).astype(np.uint8))


@pytest.mark.parametrize('encoding', ['yuv422', 'uyvy', 'yuyv', 'yuv422_yuy2'])
@pytest.mark.parametrize('pad', [0, 6])
def test_yuv422_formats(encoding, pad):
    # Packed 4:2:2 with Y=128 and neutral chroma is mid grey, whatever the byte order.
    y = np.full((H, W), 128, np.uint8)
    packed = np.empty((H, W * 2), np.uint8)
    if encoding in ('yuv422', 'uyvy'):
        packed[:, 0::2], packed[:, 1::2] = 128, y
    else:
        packed[:, 0::2], packed[:, 1::2] = y, 128
    img = decode_raw(encoding, H, W, W * 2 + pad, False, pad_rows(packed, pad))
    out = to_rgb(img)
    assert out.shape == (H, W, 3)
    assert np.all(np.abs(out.astype(int) - 128) <= 3)


def test_yuyv_luma_position():
    packed = np.zeros((H, W * 2), np.uint8)
    packed[:, 1::2] = 128                      # chroma neutral
    packed[:, 0::2] = 16                       # Y dark
    packed[0, 0] = 235                          # first pixel's Y bright
    out = to_rgb(decode_raw('yuyv', H, W, W * 2, False, packed.tobytes()))
    assert out[0, 0].mean() > 200 and out[0, 1].mean() < 40


@pytest.mark.parametrize('kwargs,message', [
    ({'height': H, 'width': W, 'step': W * 3, 'data': b'\0' * (W * 3 * H - 1)}, 'truncated'),
    ({'height': H, 'width': W, 'step': W * 2, 'data': b'\0' * 1000}, 'step'),
    ({'height': 0, 'width': W, 'step': W * 3, 'data': b''}, 'zero-size'),
    ({'height': H, 'width': 0, 'step': 0, 'data': b''}, 'zero-size'),
    ({'height': H, 'width': W, 'step': W * 3, 'data': b'', 'encoding': 'bayer_rggb8'},
     'unsupported'),
    ({'height': H, 'width': 7, 'step': 14, 'data': b'\0' * 200, 'encoding': 'yuyv'}, 'even width'),
    ({'height': 100000, 'width': 100000, 'step': 300000, 'data': b''}, 'too large'),
    ({'height': H, 'width': W, 'step': W * 3, 'data': 12345}, 'byte buffer'),
])
def test_malformed_raw_frames(kwargs, message):
    args = {'encoding': 'rgb8', 'is_bigendian': False} | kwargs
    with pytest.raises(FrameError, match=message):
        decode_raw(**args)


def test_last_row_padding_may_be_omitted(rgb):
    data = pad_rows(rgb, 4)[:-4]
    np.testing.assert_array_equal(to_rgb(decode_raw('rgb8', H, W, W * 3 + 4, False, data)), rgb)


@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_compressed(rgb, ext):
    big = cv2.resize(rgb, (64, 48), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(ext, big[..., ::-1])
    img = decode_compressed('jpeg' if ext == '.jpg' else 'png', buf.tobytes())
    err = np.abs(to_rgb(img).astype(int) - big.astype(int)).mean()
    assert err == 0 if ext == '.png' else err < 20  # jpeg is lossy on noise


def test_compressed_mono_png():
    mono = np.arange(48 * 64, dtype=np.uint8).reshape(48, 64)
    img = decode_compressed('png', cv2.imencode('.png', mono)[1].tobytes())
    assert img.channel_order == 'mono'
    np.testing.assert_array_equal(img.pixels[..., 0], mono)


@pytest.mark.parametrize('fmt,data,message', [
    ('jpeg', b'', 'empty'),
    ('jpeg', b'\xff\xd8\xff garbage', 'undecodable'),
    ('png', b'\x89PNG\r\n\x1a\n' + b'\0' * 20, 'undecodable'),
    ('tiff', b'II*\0', 'unsupported'),
])
def test_malformed_compressed(fmt, data, message):
    with pytest.raises(FrameError, match=message):
        decode_compressed(fmt, data)


def test_from_array_validates():
    with pytest.raises(FrameError):
        from_array(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(FrameError):
        from_array(np.zeros((0, 4, 3), np.uint8))
    assert from_array(np.zeros((4, 5), np.uint8)).pixels.shape == (4, 5, 1)
