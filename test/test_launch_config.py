import ast
from pathlib import Path

import pytest

from leanood_ros.launch_config import monitor_node_config, parse_bool

REPO = Path(__file__).resolve().parent.parent


def test_defaults_pick_the_lean_vae_on_cpu():
    cfg = monitor_node_config()
    assert cfg['parameters'] == [{'detector': 'vae', 'model': 'vae_lean', 'device': 'cpu',
                                  'compressed': False, 'forward_features': False}]
    assert ('image', '/camera/image_raw') in cfg['remappings']
    assert ('image/compressed', '/camera/image_raw/compressed') in cfg['remappings']


def test_earlin_gpu_with_params_file_and_namespace():
    cfg = monitor_node_config(detector='earlin', device='gpu', params_file='/p.yaml',
                              namespace='/front/', compressed='True', image_topic='/cam/')
    assert cfg['parameters'][0] == '/p.yaml'           # the file first: arguments override it
    assert cfg['parameters'][1]['model'] == 'earlin_lite0'
    assert cfg['parameters'][1]['compressed'] is True
    assert cfg['namespace'] == 'front'
    assert ('image/compressed', '/cam/compressed') in cfg['remappings']


def test_explicit_variant_wins():
    assert monitor_node_config(variant='vae_baseline')['parameters'][-1]['model'] == 'vae_baseline'


@pytest.mark.parametrize('kwargs,message', [
    (dict(detector='yolo'), 'detector'), (dict(device='tpu'), 'device'),
    (dict(compressed='maybe'), 'compressed'), (dict(image_topic=''), 'image_topic'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        monitor_node_config(**kwargs)


def test_parse_bool():
    assert parse_bool('x', 'TRUE') and not parse_bool('x', 'off')


@pytest.mark.parametrize('launch_file', sorted((REPO / 'launch').glob('*.launch.py')))
def test_launch_files_are_thin_and_use_the_shared_api(launch_file):
    """`launch` cannot be installed here, so check what can be checked: the file parses, defines
    generate_launch_description, imports only the API shared by Humble/Jazzy/Kilted, and keeps
    its logic in leanood_ros."""
    tree = ast.parse(launch_file.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in names
    allowed = {'launch', 'launch.actions', 'launch.substitutions', 'launch_ros.actions',
               'launch.launch_description_sources', 'ament_index_python.packages', 'os'}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in allowed or node.module.startswith('leanood_ros.'), node.module
    assert len(launch_file.read_text().splitlines()) < 80


class _Recorder:
    """Stands in for a launch/launch_ros class: records its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _run_launch_file(launch_file, monkeypatch, **arguments):
    """Evaluate a launch file against recording stand-ins of the launch API (the real `launch`
    package is not installable here) and return the Node actions it would start."""
    import importlib.util
    import sys
    import types

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]
    mods = {'launch': types.ModuleType('launch'), 'launch.actions': types.ModuleType('a'),
            'launch.substitutions': types.ModuleType('s'), 'launch_ros': types.ModuleType('r'),
            'launch_ros.actions': types.ModuleType('ra')}
    mods['launch'].LaunchDescription = lambda entities: list(entities)
    mods['launch.actions'].DeclareLaunchArgument = _Recorder
    mods['launch.actions'].OpaqueFunction = _Recorder
    mods['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    mods['launch_ros.actions'].Node = _Recorder
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('launch_under_test', launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description()
    declared = {e.args[0] if e.args else e.kwargs['name']: e.kwargs for e in entities
                if 'default_value' in e.kwargs}
    context = {name: kw['default_value'] for name, kw in declared.items()} | arguments
    nodes = []
    for e in entities:
        if 'function' in e.kwargs:
            nodes += e.kwargs['function'](context)
    return declared, nodes


def test_monitor_launch_file_builds_the_node(monkeypatch):
    declared, nodes = _run_launch_file(REPO / 'launch' / 'ood_monitor.launch.py', monkeypatch,
                                       detector='earlin', namespace='front')
    assert declared['detector']['choices'] == ['vae', 'earlin']
    assert declared['device']['choices'] == ['cpu', 'gpu']
    assert set(declared) >= {'detector', 'variant', 'device', 'image_topic', 'compressed',
                             'params_file', 'namespace'}
    (node,) = nodes
    assert node.kwargs['executable'] == 'ood_monitor' and node.kwargs['namespace'] == 'front'
    assert node.kwargs['parameters'][-1]['model'] == 'earlin_lite0'


def test_collaborative_launch_sides(monkeypatch):
    f = REPO / 'launch' / 'collaborative.launch.py'
    _, both = _run_launch_file(f, monkeypatch)
    assert [n.kwargs['executable'] for n in both] == ['ood_monitor', 'collaborative_inference']
    assert both[0].kwargs['parameters'][-1]['forward_features'] is True
    _, edge = _run_launch_file(f, monkeypatch, side='edge')
    _, cloud = _run_launch_file(f, monkeypatch, side='cloud', device='gpu')
    assert [n.kwargs['executable'] for n in edge] == ['ood_monitor']
    assert [n.kwargs['executable'] for n in cloud] == ['collaborative_inference']
    assert cloud[0].kwargs['parameters'][-1] == {'model': 'earlin_lite0', 'device': 'gpu'}


def test_demo_launch_plays_the_sample_into_the_monitor(monkeypatch):
    _, nodes = _run_launch_file(REPO / 'launch' / 'demo.launch.py', monkeypatch, shift='fog')
    replay, monitor = nodes
    assert replay.kwargs['parameters'][0]['recording'] == 'sample'
    assert replay.kwargs['parameters'][0]['shift'] == 'fog'
    assert replay.kwargs['parameters'][0]['loop'] is True
    assert ('image', '/camera/image_raw') in replay.kwargs['remappings']
    assert ('image', '/camera/image_raw') in monitor.kwargs['remappings']


def test_replay_config_rejects_bad_numbers():
    from leanood_ros.launch_config import replay_node_config
    with pytest.raises(ValueError, match='numbers'):
        replay_node_config(rate='fast')
