"""The demo on a robot: the shipped sample recording (or any recording) -> ood_monitor.

    ros2 launch leanood_ros demo.launch.py [detector:=earlin] [recording:=/path/to/bag] [shift:=fog]
    ros2 topic echo /ood/is_safe
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from leanood_ros.launch_config import monitor_node_config, replay_node_config

ARGS = [
    ('detector', 'vae', 'Detector family.', ('vae', 'earlin')),
    ('variant', '', 'Model variant or bundle path.', None),
    ('recording', 'sample', 'Recording to play (bag, image folder, video) or sample.', None),
    ('loop', 'true', 'Play the recording in a loop.', ('true', 'false')),
    ('shift', '', 'Shift to inject live (rain, dark, fog, glare, blur, noise, snow).', None),
    ('shift_after_s', '5.0', 'Seconds before the injected shift starts.', None),
]


def _nodes(context, *_):
    v = {name: LaunchConfiguration(name).perform(context) for name, *_ in ARGS}
    replay = replay_node_config(v['recording'], loop=v['loop'], shift=v['shift'],
                                shift_after_s=v['shift_after_s'])
    monitor = monitor_node_config(detector=v['detector'], variant=v['variant'])
    return [Node(package='leanood_ros', executable='camera_replay', name='camera_replay',
                 output='screen', **replay),
            Node(package='leanood_ros', executable='ood_monitor', name='ood_monitor',
                 output='screen', **monitor)]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc,
                               **({'choices': list(choices)} if choices else {}))
         for name, default, desc, choices in ARGS]
        + [OpaqueFunction(function=_nodes)])
