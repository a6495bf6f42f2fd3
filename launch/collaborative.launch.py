"""EARLIN collaborative inference: the edge monitor (robot) and the cloud part, in one DDS domain.

    ros2 launch leanood_ros collaborative.launch.py                      # both on this host
    ros2 launch leanood_ros collaborative.launch.py side:=edge           # on the robot
    ros2 launch leanood_ros collaborative.launch.py side:=cloud          # on the server

With side:=both the cloud part ends when the edge monitor exits (and the other way round).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from leanood_ros.launch_config import (cloud_node_config, end_launch_when_exits,
                                       monitor_node_config)

ARGS = [
    ('side', 'both', 'Which part to start here.', ['both', 'edge', 'cloud']),
    ('variant', '', 'EARLIN bundle, variant or path (unset: params_file, else earlin_lite0).',
     None),
    ('device', '', 'Inference device of both parts: cpu or gpu (unset: params_file, else cpu).',
     None),
    ('params_file', '', 'YAML parameter file of both nodes (see config/earlin.yaml).', None),
    ('image_topic', '/camera/image_raw', 'Camera topic.', None),
    ('compressed', '', 'true: subscribe to CompressedImage (unset: params_file, else false).',
     None),
    ('namespace', '', 'Namespace of both nodes (the tensor topic must match).', None),
]


def _nodes(context, *_):
    v = {name: LaunchConfiguration(name).perform(context) for name, *_ in ARGS}
    nodes = []
    if v['side'] in ('both', 'edge'):
        cfg = monitor_node_config(detector='earlin', variant=v['variant'], device=v['device'],
                                  image_topic=v['image_topic'], compressed=v['compressed'],
                                  params_file=v['params_file'], namespace=v['namespace'],
                                  forward_features='true')
        nodes.append(Node(package='leanood_ros', executable=cfg.pop('executable'),
                          name='ood_monitor', output='screen', emulate_tty=True, **cfg))
    if v['side'] in ('both', 'cloud'):
        cfg = cloud_node_config(v['variant'], v['device'], v['namespace'], v['params_file'])
        nodes.append(Node(package='leanood_ros', executable='collaborative_inference',
                          name='collaborative_inference', output='screen', emulate_tty=True,
                          **cfg))
    return nodes + [end_launch_when_exits(n) for n in nodes]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc,
                               **({'choices': choices} if choices else {}))
         for name, default, desc, choices in ARGS] + [OpaqueFunction(function=_nodes)])
