"""Fixtures of the whole suite.

The helpers next to this file (ros_harness, bundle_factory) import as top-level modules: pytest
puts a test directory without __init__.py on sys.path (its default `prepend` import mode), and
`python -m pytest` from the checkout, colcon test and an installed package all find leanood_ros.
"""
import itertools
import os

import pytest

# Keep DDS traffic on this host for every rclpy context this process and its children create.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

# One ROS domain per test: a base drawn from the pid keeps parallel CI jobs apart (0..232 valid);
# LEANOOD_TEST_DOMAIN_BASE pins it, for suites that run side by side on one machine.
_domains = itertools.count(int(os.environ.get('LEANOOD_TEST_DOMAIN_BASE', 0))
                           or 1 + (os.getpid() * 7) % 150)


@pytest.fixture
def domain_id():
    return next(_domains) % 232 + 1


@pytest.fixture(scope='session')
def tiny_bundle(tmp_path_factory):
    from bundle_factory import make_tiny_bundle
    return make_tiny_bundle(tmp_path_factory.mktemp('bundles') / 'tiny')
