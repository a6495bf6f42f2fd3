"""ament_flake8 over the package, as ament_lint_auto runs it in every ROS 2 package."""
from ament_flake8.main import main_with_errors
import pytest

from ros_harness import REPO

PATHS = ('leanood_ros', 'launch', 'test', 'tools', 'setup.py')


@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[
        *(str(REPO / p) for p in PATHS), '--config', str(REPO / '.flake8')])
    assert rc == 0, f'{len(errors)} flake8 errors:\n' + '\n'.join(errors)
