"""The package as a ROS workspace installs it (colcon build; colcon test runs these).

Skipped where leanood_ros is not in an ament prefix (a plain checkout).
"""
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke
EXECUTABLES = ('ood_monitor', 'camera_replay', 'collaborative_inference', 'safety_gate',
               'leanood')


@pytest.fixture
def prefix():
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    try:
        return Path(get_package_prefix('leanood_ros'))
    except (PackageNotFoundError, OSError):   # not in an ament prefix, or none is set
        pytest.skip('leanood_ros is not installed in an ament prefix')


def test_share_holds_launch_files_configs_models_and_the_sample(prefix):
    from leanood_ros.bundle import default_models_dir
    from leanood_ros.nodes.camera_replay import sample_recording
    share = prefix / 'share' / 'leanood_ros'
    for name in ('ood_monitor.launch.py', 'demo.launch.py', 'collaborative.launch.py'):
        assert (share / 'launch' / name).is_file()
    assert (share / 'config' / 'jetson_gpu.yaml').is_file()
    assert (share / 'package.xml').is_file()
    assert sample_recording().is_relative_to(share)
    assert (default_models_dir() / 'vae_lean' / 'bundle.json').is_file()


def test_ros2_run_finds_every_executable(prefix):
    for name in EXECUTABLES:
        assert (prefix / 'lib' / 'leanood_ros' / name).is_file(), name


def test_installed_package_carries_the_known_answer_noise_frame(prefix):
    from leanood_ros.detectors import known_answer_frames
    installed = list(prefix.glob('lib/python*/site-packages/leanood_ros/known_answer_noise.npy'))
    assert installed, 'package_data lost the self-test noise frame'
    assert len(known_answer_frames()) == 6
