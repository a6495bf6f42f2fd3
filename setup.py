"""ament_python package setup; the version comes from package.xml (the one place it is written)."""
from glob import glob
import os
import re

from setuptools import find_packages, setup

PACKAGE = 'leanood_ros'
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, 'package.xml'), encoding='utf-8') as f:
    VERSION = re.search(r'<version>([^<]+)</version>', f.read()).group(1)


def tree(src, dst_root):
    """data_files entries that install every file under `src` keeping its layout."""
    entries = []
    for root, _, files in os.walk(src):
        if files:
            entries.append((os.path.join(dst_root, root),
                            [os.path.join(root, name) for name in sorted(files)]))
    return entries


setup(
    name=PACKAGE,
    version=VERSION,
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['known_answer_noise.npy']},   # the self-test's noise frame
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ] + tree('models', 'share/' + PACKAGE) + tree('samples', 'share/' + PACKAGE),
    install_requires=['setuptools'],
    zip_safe=False,   # known_answer_noise.npy is read from the package folder
    maintainer='leanood_ros maintainers',
    maintainer_email='leanood@example.com',
    description='Lean OOD safety monitor for camera-driven robots (ROS 2).',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'ood_monitor = leanood_ros.nodes.entry_points:ood_monitor',
            'managed_ood_monitor = leanood_ros.nodes.entry_points:managed_ood_monitor',
            'camera_replay = leanood_ros.nodes.entry_points:camera_replay',
            'collaborative_inference = leanood_ros.nodes.entry_points:collaborative_inference',
            'safety_gate = leanood_ros.nodes.entry_points:safety_gate',
            'leanood = leanood_ros.cli:main',
        ],
    },
)
