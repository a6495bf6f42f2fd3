"""The demo on a robot: the shipped sample recording (or any recording) -> ood_monitor.

    ros2 launch leanood_ros demo.launch.py [detector:=earlin] [recording:=/path/bag] [shift:=fog]
    ros2 topic echo /ood/is_safe

The camera holds playback until the monitor has matched it and acknowledged the first frame;
when either node exits (the recording ends with loop:=false, or a node fails) the launch ends,
non-zero on a failure.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from leanood_ros.launch_config import (end_launch_when_exits, monitor_node_config,
                                       replay_node_config)

ARGS = [
    ('detector', '', 'Detector family: vae or earlin (unset: params_file, else vae).'),
    ('variant', '', "Model variant or bundle path (unset: the detector's lean one)."),
    ('params_file', '', 'YAML parameter file of the monitor (see config/).'),
    ('recording', 'sample', 'Recording to play (bag, image folder, video) or sample.'),
    ('loop', 'true', 'Play the recording in a loop (false: the launch ends with it).'),
    ('shift', '', 'Shift to inject live (rain, dark, fog, glare, blur, noise, snow).'),
    ('shift_after_s', '5.0', 'Seconds before the injected shift starts.'),
]
MONITOR_ARGS = ('detector', 'variant', 'params_file')


def _nodes(context, *_):
    v = {name: LaunchConfiguration(name).perform(context) for name, *_ in ARGS}
    monitor = monitor_node_config(**{k: v.pop(k) for k in MONITOR_ARGS})
    replay = replay_node_config(**v, wait_for_subscribers='1')
    nodes = [Node(package='leanood_ros', executable=monitor.pop('executable'),
                  name='ood_monitor', output='screen', emulate_tty=True, **monitor),
             Node(package='leanood_ros', executable='camera_replay', name='camera_replay',
                  output='screen', emulate_tty=True, **replay)]
    return nodes + [end_launch_when_exits(n) for n in nodes]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, default, desc in ARGS] + [OpaqueFunction(function=_nodes)])
