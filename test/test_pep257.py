"""ament_pep257 over the package, as ament_lint_auto runs it in every ROS 2 package.

The ament convention, except D213: this package writes a docstring's summary on its first line
(PEP 257's own examples; ament_flake8's docstring check accepts both).
"""
from ament_pep257.main import main
import pytest

from ros_harness import REPO

PATHS = ('leanood_ros', 'launch', 'test', 'tools', 'setup.py')


@pytest.mark.linter
def test_pep257():
    rc = main(argv=['--add-ignore', 'D213', '--', *(str(REPO / p) for p in PATHS)])
    assert rc == 0, 'docstring style errors: see the output above'
