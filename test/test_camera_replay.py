"""Integration: the camera_replay process publishing to this test's subscriber over DDS."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from leanood_ros.data.bag_writer import BagWriter
from leanood_ros.image_conversion import decode_compressed, decode_raw, to_rgb
from ros_harness import Listener, RosProcess

pytestmark = pytest.mark.integration
N = 20


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / 'rec'
    with BagWriter(path, compressed=True, jpeg_quality=95) as w:
        for i in range(N):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:, :, 1] = 120
            img[:, :, 0] = 10 * i
            w.write(img, 5 * 10**9 + i * 100_000_000, 'in_distribution' if i < 15 else 'fog')
    return path


def replay(recording, domain_id, tmp_path, *params):
    args = ['-p', f'recording:={recording}', '-p', 'wait_for_subscribers:=1']
    for p in params:
        args += ['-p', p]
    return RosProcess.node('leanood_ros.nodes.camera_replay', args, domain_id,
                           tmp_path / 'replay.log')


@pytest.fixture
def listener(domain_id):
    lis = Listener(domain_id)
    lis.subscribe(Header, 'camera_replay/label', depth=1000)
    yield lis
    lis.close()


def test_plays_recording_at_recorded_rate_with_fresh_stamps(recording, domain_id, tmp_path,
                                                            listener):
    listener.subscribe(Image, 'image', depth=1000)
    proc = replay(recording, domain_id, tmp_path)
    assert proc.wait(60) == 0, proc.output()
    assert listener.wait_for(lambda: len(listener.get('camera_replay/label')) == N, 3)
    imgs = [m for _, m in listener.get('image')]
    assert len(imgs) == N
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in imgs])
    assert abs(stamps[-1] - time.time()) < 30            # fresh stamps, not the recorded 5 s
    assert np.median(np.diff(stamps)) == pytest.approx(0.1, abs=0.03)  # recorded 10 fps
    assert all(m.header.frame_id == 'camera' and m.encoding == 'rgb8' for m in imgs)
    first = to_rgb(decode_raw(imgs[3].encoding, imgs[3].height, imgs[3].width, imgs[3].step,
                              False, imgs[3].data))
    assert abs(int(first[..., 0].mean()) - 30) <= 3
    labels = [m.frame_id for _, m in listener.get('camera_replay/label')]
    assert labels == ['in_distribution'] * 15 + ['fog'] * 5
    label_stamps = [(m.stamp.sec, m.stamp.nanosec) for _, m in listener.get('camera_replay/label')]
    assert label_stamps == [(m.header.stamp.sec, m.header.stamp.nanosec) for m in imgs]


def test_loop_rate_compressed_and_live_shift(recording, domain_id, tmp_path, listener):
    listener.subscribe(CompressedImage, 'image/compressed', depth=1000)
    proc = replay(recording, domain_id, tmp_path, 'rate:=40.0', 'loop:=true', 'compressed:=true',
                  'shift:=dark', 'shift_after_s:=0.5', 'frame_id:=front_cam')
    try:
        assert listener.wait_for(lambda: len(listener.get('image/compressed')) >= 2 * N + 5, 20), \
            proc.output()
    finally:
        assert proc.stop() == 0
    msgs = [m for _, m in listener.get('image/compressed')]
    labels = [m.frame_id for _, m in listener.get('camera_replay/label')]
    assert labels[0] == 'in_distribution' and labels[-1] == 'dark'
    k = labels.index('dark')
    assert 'in_distribution' not in labels[k:]           # the shift stays on once started
    before = to_rgb(decode_compressed(msgs[k - 1].format, msgs[k - 1].data)).mean()
    after = to_rgb(decode_compressed(msgs[k + 1].format, msgs[k + 1].data)).mean()
    assert after < 0.6 * before                          # darkness really applied
    assert msgs[0].header.frame_id == 'front_cam'


@pytest.mark.parametrize('params,message', [
    (['recording:=/no/such/bag'], 'no such recording'),
    (['shift:=volcano'], 'unknown shift'),
    (['rate:=-3.0'], 'rate must be'),
])
def test_bad_configuration_exits_with_a_message(recording, domain_id, tmp_path, params, message):
    args = ['-p', f'recording:={recording}'] + [a for p in params for a in ('-p', p)]
    proc = RosProcess.node('leanood_ros.nodes.camera_replay', args, domain_id,
                           tmp_path / 'bad.log')
    assert proc.wait(30) == 2
    assert message in proc.output()


def test_help_lists_the_parameters_and_starts_nothing():
    import subprocess
    import sys

    from leanood_ros.nodes.camera_replay import PARAMETERS
    from ros_harness import REPO, ros_env
    out = subprocess.run([sys.executable, '-m', 'leanood_ros.nodes.camera_replay', '--help'],
                         cwd=REPO, env=ros_env(0), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    readme = (REPO / 'README.md').read_text()
    for name, default, _ in PARAMETERS:
        assert f'  {name} ' in out.stdout
        assert f'| `{name}` | `{default!r}` |' in readme, f'README lacks camera_replay {name}'
    assert 'playing' not in out.stdout + out.stderr
