import cv2
import numpy as np
import pytest

from leanood_ros.data.bag_writer import BagWriter
from leanood_ros.data.recordings import (IN_DISTRIBUTION, open_recording, RecordingError)
from leanood_ros.image_conversion import to_rgb

N = 8


def frames():
    return [np.full((24, 32, 3), (i * 25, 100, 200 - i * 20), np.uint8) for i in range(N)]


def labels():
    return [IN_DISTRIBUTION] * 5 + ['rain'] * (N - 5)


@pytest.fixture(params=[('mcap', True), ('mcap', False), ('sqlite3', True)],
                ids=['mcap-compressed', 'mcap-raw', 'db3-compressed'])
def bag(tmp_path, request):
    storage, compressed = request.param
    path = tmp_path / 'bag'
    with BagWriter(path, compressed=compressed, storage=storage, jpeg_quality=95) as w:
        for i, (f, lab) in enumerate(zip(frames(), labels())):
            w.write(f, 10**9 + i * 50_000_000, lab)
    return path, compressed


def test_bag_roundtrip(bag):
    path, compressed = bag
    with open_recording(path) as rec:
        assert len(rec) == N and rec.topic == '/camera/image_raw'
        got = list(rec)
    assert [f.label for f in got] == labels()
    assert [f.is_ood for f in got] == [False] * 5 + [True] * 3
    assert [f.stamp_ns for f in got] == [10**9 + i * 50_000_000 for i in range(N)]
    for f, ref in zip(got, frames()):
        err = np.abs(to_rgb(f.image).astype(int) - ref).max()
        assert err <= (6 if compressed else 0)


def test_single_mcap_file_and_topic_selection(bag):
    path, _ = bag
    files = list(path.glob('*.mcap'))
    if files:
        with open_recording(files[0], topic='/camera/image_raw') as rec:
            assert len(list(rec)) == N
    with pytest.raises(RecordingError, match="no image topic '/other'"):
        open_recording(path, topic='/other')


def test_folder_with_labels(tmp_path):
    for i, f in enumerate(frames()):
        cv2.imwrite(str(tmp_path / f'f{i:03d}.png'), f[..., ::-1])
    (tmp_path / 'notes.txt').write_text('ignored')
    rows = ['frame,ood,shift'] + [f'f{i:03d}.png,{int(i >= 5)},{"fog" if i >= 5 else ""}'
                                  for i in range(N)]
    (tmp_path / 'labels.csv').write_text('\n'.join(rows) + '\n')
    with open_recording(tmp_path) as rec:
        got = list(rec)
    assert len(got) == N
    assert [f.label for f in got] == [IN_DISTRIBUTION] * 5 + ['fog'] * 3
    np.testing.assert_array_equal(to_rgb(got[3].image), frames()[3])


def test_folder_labels_by_index_without_shift_column(tmp_path):
    for i, f in enumerate(frames()):
        cv2.imwrite(str(tmp_path / f'{i}.png'), f)
    (tmp_path / 'labels.csv').write_text('frame,ood\n0,0\n7,1\n')
    with open_recording(tmp_path) as rec:
        labs = [f.label for f in rec]
    assert labs[0] == IN_DISTRIBUTION and labs[7] == 'ood' and labs[3] is None


def test_video_with_sidecar_labels(tmp_path):
    path = tmp_path / 'clip.avi'
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (32, 24))
    for f in frames():
        vw.write(f[..., ::-1])
    vw.release()
    (tmp_path / 'clip.avi.labels.csv').write_text('frame,ood\n' + '\n'.join(
        f'{i},{int(i >= 5)}' for i in range(N)))
    with open_recording(path) as rec:
        got = list(rec)
    assert len(got) == N and got[6].is_ood and not got[1].is_ood
    assert got[1].stamp_ns == pytest.approx(1e8, rel=0.01)


@pytest.mark.parametrize('setup,message', [
    (lambda p: p / 'missing', 'no such recording'),
    (lambda p: (p / 'x.txt').write_text('hi') and p / 'x.txt', 'not a rosbag2'),
    (lambda p: (p / 'x.avi').write_bytes(b'garbage') and p / 'x.avi',
     'OpenCV cannot open|no decodable'),
    (lambda p: (p / 'x.mcap').write_bytes(b'garbage') and p / 'x.mcap', 'cannot read rosbag2'),
    (lambda p: (p / 'empty').mkdir() or p / 'empty', 'no images'),
])
def test_bad_recordings(tmp_path, setup, message):
    with pytest.raises(RecordingError, match=message):
        open_recording(setup(tmp_path))


@pytest.mark.parametrize('csv_text,message', [
    ('frame,label\n0,1\n', 'columns frame,ood'),
    ('frame,ood\nzzz.png,1\n', 'unknown frame'),
    ('frame,ood\n0,maybe\n', 'ood must be 0/1'),
])
def test_bad_labels_csv(tmp_path, csv_text, message):
    cv2.imwrite(str(tmp_path / '0.png'), frames()[0])
    (tmp_path / 'labels.csv').write_text(csv_text)
    with pytest.raises(RecordingError, match=message):
        open_recording(tmp_path)


def test_unreadable_image_in_folder(tmp_path):
    cv2.imwrite(str(tmp_path / '0.png'), frames()[0])
    (tmp_path / '1.png').write_bytes(b'not png')
    with open_recording(tmp_path) as rec, pytest.raises(RecordingError, match='unreadable'):
        list(rec)


def test_bag_without_image_topic(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    with Writer(tmp_path / 'b', version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection('/chatter', 'std_msgs/msg/String', typestore=ts)
        w.write(c, 1, ts.serialize_cdr(ts.types['std_msgs/msg/String'](data='x'),
                                       'std_msgs/msg/String'))
    with pytest.raises(RecordingError, match='no sensor_msgs/Image'):
        open_recording(tmp_path / 'b')
