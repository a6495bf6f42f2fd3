"""Launch the ood_monitor node.

    ros2 launch leanood_ros ood_monitor.launch.py detector:=vae device:=cpu \
        image_topic:=/camera/image_raw compressed:=false namespace:=front_cam

Arguments map to parameters in leanood_ros.launch_config (tested Python); this file stays thin.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from leanood_ros.launch_config import DETECTORS, monitor_node_config

ARGS = [
    ('detector', 'vae', 'Detector family.', DETECTORS),
    ('variant', '', 'Model variant under models/ or a bundle path (default: the family\'s lean one).', None),
    ('device', 'cpu', 'Inference device.', ('cpu', 'gpu')),
    ('image_topic', '/camera/image_raw', 'Camera topic (raw; /compressed is appended when compressed).', None),
    ('compressed', 'false', 'Subscribe to sensor_msgs/CompressedImage.', ('true', 'false')),
    ('params_file', '', 'YAML parameter file (see config/).', None),
    ('namespace', '', 'Namespace of the monitor and its topics.', None),
    ('forward_features', 'false', 'EARLIN: forward the split tensor of ID frames.', ('true', 'false')),
]


def _monitor(context, *_):
    values = {name: LaunchConfiguration(name).perform(context) for name, *_ in ARGS}
    cfg = monitor_node_config(**values)
    return [Node(package='leanood_ros', executable='ood_monitor', name='ood_monitor',
                 output='screen', emulate_tty=True, **cfg)]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc,
                               **({'choices': list(choices)} if choices else {}))
         for name, default, desc, choices in ARGS]
        + [OpaqueFunction(function=_monitor)])
