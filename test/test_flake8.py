"""ament_flake8 over the package, as ament_lint_auto runs it in every ROS 2 package."""
from ament_flake8.main import main_with_errors
import pytest

from ros_harness import REPO

PATHS = ('leanood_ros', 'launch', 'test', 'tools', 'setup.py')
# Files written before the lint tests came; a style sweep removes them from here.
NOT_YET_CLEAN = (
    'leanood_ros/backends.py',
    'leanood_ros/bundle.py',
    'leanood_ros/data/duckietown_dataset.py',
    'leanood_ros/data/recordings.py',
    'leanood_ros/data/shifts.py',
    'leanood_ros/decision.py',
    'leanood_ros/detectors.py',
    'leanood_ros/evaluation/bench.py',
    'leanood_ros/evaluation/evaluate.py',
    'leanood_ros/evaluation/frames.py',
    'leanood_ros/evaluation/graph_stats.py',
    'leanood_ros/evaluation/metrics.py',
    'leanood_ros/evaluation/tune.py',
    'leanood_ros/monitor.py',
    'leanood_ros/nodes/collaborative_inference.py',
    'leanood_ros/nodes/ood_monitor.py',
    'leanood_ros/nodes/ros_common.py',
    'leanood_ros/parameters.py',
    'leanood_ros/preprocess.py',
    'leanood_ros/training/architectures.py',
    'leanood_ros/training/compress.py',
    'leanood_ros/training/earlin.py',
    'leanood_ros/training/export.py',
    'leanood_ros/training/refit.py',
    'leanood_ros/training/train_vae.py',
    'test/bundle_factory.py',
    'test/helpers/synthetic_camera.py',
    'test/test_bench.py',
    'test/test_bundle.py',
    'test/test_collaborative.py',
    'test/test_config_files.py',
    'test/test_decision.py',
    'test/test_evaluate.py',
    'test/test_image_conversion.py',
    'test/test_ood_monitor_node.py',
    'test/test_package.py',
    'test/test_recordings.py',
    'test/test_vae_tooling.py',
    'tools/duckietown/coverage.py',
    'tools/duckietown/render.py',
    'tools/duckietown/render_plan.py',
    'tools/experiments/wknn_vs_mahalanobis.py',
)


@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[
        *(str(REPO / p) for p in PATHS), '--config', str(REPO / '.flake8'),
        '--exclude', *(str(REPO / p) for p in NOT_YET_CLEAN)])
    assert rc == 0, f'{len(errors)} flake8 errors:\n' + '\n'.join(errors)


def test_the_pending_list_names_existing_files():
    assert all((REPO / p).is_file() for p in NOT_YET_CLEAN)
