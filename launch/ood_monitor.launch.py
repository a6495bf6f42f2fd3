"""Launch the ood_monitor node (and, with safety_gate:=true, a cmd_vel safety gate beside it).

    ros2 launch leanood_ros ood_monitor.launch.py detector:=vae image_topic:=/camera/image_raw
    ros2 launch leanood_ros ood_monitor.launch.py params_file:=config/jetson_gpu.yaml

Only the arguments you give override params_file (an empty argument means "not given").
Arguments map to parameters in leanood_ros.launch_config (tested Python); this file stays thin.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from leanood_ros.launch_config import (end_launch_when_exits, gate_node_config,
                                       monitor_node_config, parse_bool)

UNSET = 'unset: params_file, else the node default'
ARGS = [
    ('detector', '', f'Detector family: vae or earlin ({UNSET}).'),
    ('variant', '', 'Model variant under models/ or a bundle path (unset: params_file, else '
                    "the detector's lean one)."),
    ('device', '', f'Inference device: cpu or gpu ({UNSET}).'),
    ('require_gpu', '', f'true: refuse to start when device=gpu falls back ({UNSET}).'),
    ('image_topic', '/camera/image_raw', 'Camera topic (/compressed appended when compressed).'),
    ('compressed', '', f'true: subscribe to sensor_msgs/CompressedImage ({UNSET}).'),
    ('params_file', '', 'YAML parameter file (see config/).'),
    ('namespace', '', 'Namespace of the nodes and their topics.'),
    ('forward_features', '', f'EARLIN: forward the split tensor of ID frames ({UNSET}).'),
    ('managed', '', f'true: a lifecycle (managed) monitor ({UNSET}).'),
    ('overlay', '', f'true: publish the ood/overlay debug image ({UNSET}).'),
    ('safety_gate', 'false', 'true: also start safety_gate (cmd_vel_in -> cmd_vel_out).'),
    ('cmd_vel_in', '/cmd_vel_raw', "safety_gate: the controller's command topic."),
    ('cmd_vel_out', '/cmd_vel', 'safety_gate: the topic the base listens to.'),
]
GATE_ARGS = ('cmd_vel_in', 'cmd_vel_out')


def _nodes(context, *_):
    v = {name: LaunchConfiguration(name).perform(context) for name, *_ in ARGS}
    gate = parse_bool('safety_gate', v.pop('safety_gate'))
    gate_topics = {k: v.pop(k) for k in GATE_ARGS}
    monitor = monitor_node_config(**v)
    nodes = [Node(package='leanood_ros', executable=monitor.pop('executable'),
                  name='ood_monitor', output='screen', emulate_tty=True, **monitor)]
    if gate:
        nodes.append(Node(package='leanood_ros', executable='safety_gate', name='safety_gate',
                          output='screen', emulate_tty=True,
                          **gate_node_config(v['params_file'], v['namespace'], **gate_topics)))
    # every node is required: one that exits ends the launch (non-zero when it failed)
    return nodes + [end_launch_when_exits(n) for n in nodes]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, default, desc in ARGS] + [OpaqueFunction(function=_nodes)])
