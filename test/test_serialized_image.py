"""The CDR reader of serialized Image / CompressedImage messages (what `raw=True` hands over).

Checked against two independent serializers: rclpy's (little-endian, what the node receives from
the middleware) and rosbags' (also big-endian).  Whatever the bytes, the reader returns fields
whose `data` lies inside the buffer, or raises FrameError.
"""
import cv2
from hypothesis import given, HealthCheck, settings
from hypothesis import strategies as st
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.typesys import get_typestore, Stores
from sensor_msgs.msg import CompressedImage, Image

from leanood_ros.image_conversion import (decode_compressed, decode_raw, FrameError,
                                          SUPPORTED_ENCODINGS)
from leanood_ros.serialized_image import FrameContent, read_compressed_image, read_image

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
JPEG = cv2.imencode('.jpg', np.full((64, 96, 3), 90, np.uint8))[1].tobytes()
PNG = cv2.imencode('.png', np.full((8, 8), 5, np.uint8))[1].tobytes()

# frame_id lengths 0-9 move every later field across all four alignments
text = st.text(st.characters(codec='utf-8', exclude_characters='\x00'), max_size=9)
image_fields = st.fixed_dictionaries({
    'sec': st.integers(-2 ** 31, 2 ** 31 - 1), 'nanosec': st.integers(0, 2 ** 32 - 1),
    'frame_id': text, 'height': st.integers(0, 2 ** 32 - 1), 'width': st.integers(0, 2 ** 32 - 1),
    'encoding': st.one_of(st.sampled_from(SUPPORTED_ENCODINGS), text),
    'is_bigendian': st.integers(0, 1), 'step': st.integers(0, 2 ** 32 - 1),
    'data': st.binary(max_size=300)})
compressed_fields = st.fixed_dictionaries({
    'sec': st.integers(-2 ** 31, 2 ** 31 - 1), 'nanosec': st.integers(0, 2 ** 32 - 1),
    'frame_id': text, 'format': st.one_of(st.sampled_from(['jpeg', 'png', '']), text),
    'data': st.binary(max_size=300)})


def rclpy_image(f):
    msg = Image(height=f['height'], width=f['width'], encoding=f['encoding'],
                is_bigendian=f['is_bigendian'], step=f['step'])
    msg.header.stamp.sec, msg.header.stamp.nanosec = f['sec'], f['nanosec']
    msg.header.frame_id, msg.data = f['frame_id'], f['data']
    return serialize_message(msg)


def rclpy_compressed(f):
    msg = CompressedImage(format=f['format'])
    msg.header.stamp.sec, msg.header.stamp.nanosec = f['sec'], f['nanosec']
    msg.header.frame_id, msg.data = f['frame_id'], f['data']
    return serialize_message(msg)


def rosbags_message(typename, f, little_endian):
    t = TYPESTORE.types
    header = t['std_msgs/msg/Header'](
        stamp=t['builtin_interfaces/msg/Time'](sec=f['sec'], nanosec=f['nanosec']),
        frame_id=f['frame_id'])
    data = np.frombuffer(f['data'], np.uint8)
    if typename == 'sensor_msgs/msg/Image':
        msg = t[typename](header=header, height=f['height'], width=f['width'],
                          encoding=f['encoding'], is_bigendian=f['is_bigendian'],
                          step=f['step'], data=data)
    else:
        msg = t[typename](header=header, format=f['format'], data=data)
    return bytes(TYPESTORE.serialize_cdr(msg, typename, little_endian=little_endian))


def check_header(frame, f):
    assert (frame.stamp_sec, frame.stamp_nanosec, frame.frame_id) == \
        (f['sec'], f['nanosec'], f['frame_id'])
    assert frame.stamp_ns == f['sec'] * 10 ** 9 + f['nanosec']
    assert frame.data.tobytes() == f['data']


@FUZZ
@given(image_fields)
def test_image_round_trip(f):
    for buf in (rclpy_image(f), rosbags_message('sensor_msgs/msg/Image', f, True),
                rosbags_message('sensor_msgs/msg/Image', f, False)):
        frame = read_image(buf)
        check_header(frame, f)
        fields = (frame.height, frame.width, frame.encoding, frame.is_bigendian, frame.step)
        assert fields == (f['height'], f['width'], f['encoding'], bool(f['is_bigendian']),
                          f['step'])
        assert frame.fmt is None


@FUZZ
@given(compressed_fields)
def test_compressed_image_round_trip(f):
    for buf in (rclpy_compressed(f), rosbags_message('sensor_msgs/msg/CompressedImage', f, True),
                rosbags_message('sensor_msgs/msg/CompressedImage', f, False)):
        frame = read_compressed_image(buf)
        check_header(frame, f)
        assert frame.fmt == f['format']


def test_data_is_a_view_of_the_buffer():
    msg = Image(height=480, width=640, encoding='rgb8', step=640 * 3)
    msg.data = np.random.default_rng(0).integers(0, 256, 480 * 640 * 3, np.uint8).tobytes()
    buf = serialize_message(msg)
    frame = read_image(buf)
    assert not frame.data.flags.owndata and not frame.data.flags.writeable
    assert np.shares_memory(frame.data, np.frombuffer(buf, np.uint8))
    img = decode_raw(frame.encoding, frame.height, frame.width, frame.step, frame.is_bigendian,
                     frame.data)
    assert np.shares_memory(img.pixels, np.frombuffer(buf, np.uint8))
    assert img.pixels.tobytes() == msg.data.tobytes()


def test_padding_after_the_data_is_accepted_anything_more_is_not():
    buf = rclpy_image({'sec': 1, 'nanosec': 2, 'frame_id': 'cam', 'height': 1, 'width': 1,
                       'encoding': 'mono8', 'is_bigendian': 0, 'step': 1, 'data': b'\x07'})
    assert read_image(buf + b'\0\0\0').data.tobytes() == b'\x07'
    with pytest.raises(FrameError, match='4 bytes after the data'):
        read_image(buf + b'\0' * 4)


@pytest.mark.parametrize('buf', [b'', b'\x00\x01\x00', *(head + bytes(40) for head in (
    b'\x00\x02\x00\x00', b'\x00\x03\x00\x00', b'\x00\x11\x00\x00', b'\x01\x01\x00\x00'))])
def test_only_plain_cdr_is_read(buf):
    """Parameter-list and XCDR2 encapsulations (and garbage) are refused, not guessed at."""
    with pytest.raises(FrameError, match='not a plain CDR message'):
        read_image(buf)


def test_a_lying_data_length_is_refused_without_allocating():
    buf = bytearray(rclpy_image({'sec': 1, 'nanosec': 2, 'frame_id': '', 'height': 4096,
                                 'width': 4096, 'encoding': 'rgb8', 'is_bigendian': 0,
                                 'step': 3 * 4096, 'data': b'\1' * 16}))
    buf[-20:-16] = (2 ** 32 - 1).to_bytes(4, 'little')   # data length: 4 GB
    with pytest.raises(FrameError, match='truncated message: data of 4294967295 bytes'):
        read_image(bytes(buf))
    with pytest.raises(FrameError):
        read_image(rclpy_image({'sec': 1, 'nanosec': 2, 'frame_id': 'x' * 8, 'height': 1,
                                'width': 1, 'encoding': 'mono8', 'is_bigendian': 0, 'step': 1,
                                'data': b'1'})[:-2])


@FUZZ
@given(image_fields, st.data())
def test_fuzz_damaged_images_only_raise_frame_error(f, data):
    buf = bytearray(rclpy_image(f))
    cut = data.draw(st.integers(0, len(buf)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(buf) - 1), st.integers(0, 7)),
                               max_size=4))
    for i, bit in flips:
        buf[i] ^= 1 << bit
    try:
        frame = read_image(bytes(buf[:cut]))
    except FrameError:
        return
    assert frame.data.size <= cut
    try:   # the decoder's rules apply to the view unchanged
        decode_raw(frame.encoding, frame.height, frame.width, frame.step, frame.is_bigendian,
                   frame.data)
    except FrameError:
        pass


@FUZZ
@given(compressed_fields, st.data())
def test_fuzz_damaged_compressed_images_only_raise_frame_error(f, data):
    f = dict(f, data=data.draw(st.sampled_from([f['data'], JPEG, PNG])))
    buf = bytearray(rclpy_compressed(f))
    cut = data.draw(st.integers(0, len(buf)))
    for i, bit in data.draw(st.lists(st.tuples(st.integers(0, len(buf) - 1),
                                               st.integers(0, 7)), max_size=4)):
        buf[i] ^= 1 << bit
    try:
        frame = read_compressed_image(bytes(buf[:cut]))
    except FrameError:
        return
    assert frame.data.size <= cut
    try:
        decode_compressed(frame.fmt, frame.data, (8, 8))
    except FrameError:
        pass


@pytest.mark.parametrize('fmt, data, shape', [('jpeg', JPEG, (64, 96, 3)),
                                              ('png', PNG, (8, 8, 1))])
def test_compressed_view_decodes_like_the_message(fmt, data, shape):
    frame = read_compressed_image(rclpy_compressed({'sec': 0, 'nanosec': 0, 'frame_id': 'c',
                                                    'format': fmt, 'data': data}))
    assert decode_compressed(frame.fmt, frame.data).pixels.shape == shape
    # the reduced JPEG decode and the format check work on the view as on the message's bytes
    if fmt == 'jpeg':
        assert decode_compressed(frame.fmt, frame.data, (8, 8)).pixels.shape == (8, 12, 3)
    with pytest.raises(FrameError, match='declares'):
        decode_compressed('png' if fmt == 'jpeg' else 'jpeg', frame.data)


def test_frame_content_is_equal_only_for_the_same_bytes():
    """The frozen-camera check: a repeat of the data is equal, a one-bit change anywhere is not."""
    def frame(data, sec=1, frame_id='cam'):
        return read_image(rclpy_image({'sec': sec, 'nanosec': 0, 'frame_id': frame_id,
                                       'height': 40, 'width': 50, 'encoding': 'rgb8',
                                       'is_bigendian': 0, 'step': 150, 'data': bytes(data)}))
    data = bytearray(np.random.default_rng(1).integers(0, 256, 6000, np.uint8).tobytes())
    first = frame(data).content()
    # the same data with another stamp and frame_id (the data starts elsewhere in the buffer)
    assert frame(data, sec=2, frame_id='camera_0').content() == first
    for i in (0, 2999, 3000, 3001, 5999):   # 3000: where the middle window starts
        changed = bytearray(data)
        changed[i] ^= 1
        assert frame(changed).content() != first
    for n in (1, 2, 3):   # frames smaller than the window
        assert FrameContent(bytes(n), 0, n) == FrameContent(b'x' + bytes(n), 1, n)
        assert FrameContent(bytes(n), 0, n) != FrameContent(b'\1' * n, 0, n)
    assert read_compressed_image(rclpy_compressed({'sec': 1, 'nanosec': 0, 'frame_id': 'cam',
                                                   'format': 'png', 'data': bytes(data[:-1])})
                                 ).content() != first


@FUZZ
@given(st.binary(min_size=1, max_size=3 * FrameContent.PROBE), st.data())
def test_frame_content_equality_is_byte_equality(data, draw):
    """Wherever the frames differ (in the middle window or outside it), they are not equal."""
    other = bytearray(data)
    if draw.draw(st.booleans()):
        other[draw.draw(st.integers(0, len(data) - 1))] ^= draw.draw(st.integers(1, 255))
    pad = draw.draw(st.integers(0, 7))   # the data starts anywhere in its message
    same = FrameContent(data, 0, len(data)) == FrameContent(bytes(pad) + other, pad, len(data))
    assert same == (bytes(other) == data)


@pytest.mark.parametrize('buf', [memoryview(b'\0\1\0\0'), np.zeros(40, np.uint8), 'text', None])
def test_only_bytes_are_read(buf):
    with pytest.raises(FrameError, match='a serialized image is bytes'):
        read_image(buf)
