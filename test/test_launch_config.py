import ast
from pathlib import Path

import pytest

from leanood_ros.launch_config import (cloud_node_config, file_parameters, gate_node_config,
                                       monitor_node_config, parse_bool, required_exit)

REPO = Path(__file__).resolve().parent.parent


CONFIG = REPO / 'config'


def effective(cfg, node='ood_monitor'):
    """Return the parameters the node ends up with.

    The entries in order, a later one wins: what launch_ros does with files and dicts.
    """
    values = {}
    for entry in cfg['parameters']:
        values.update(file_parameters(entry, node) if isinstance(entry, str) else entry)
    return values


def test_nothing_given_leaves_everything_to_the_node_defaults():
    cfg = monitor_node_config()
    assert cfg['parameters'] == []
    assert ('image', '/camera/image_raw') in cfg['remappings']
    assert ('image/compressed', '/camera/image_raw/compressed') in cfg['remappings']


@pytest.mark.parametrize('name,expected', [
    ('earlin.yaml', {'model': 'earlin_lite0', 'detector': 'earlin', 'forward_features': True}),
    ('jetson_gpu.yaml', {'device': 'gpu', 'require_gpu': True, 'deadline_ms': 33.0}),
    ('vae.yaml', {'model': 'vae_lean', 'detector': 'vae', 'device': 'cpu'}),
])
def test_a_file_alone_is_what_the_node_gets(name, expected):
    cfg = monitor_node_config(params_file=str(CONFIG / name))
    assert cfg['parameters'] == [str(CONFIG / name)]
    assert effective(cfg).items() >= expected.items()


def test_only_given_arguments_override_the_file():
    cfg = monitor_node_config(params_file=str(CONFIG / 'jetson_gpu.yaml'), device='cpu',
                              compressed='true')
    assert cfg['parameters'][-1] == {'device': 'cpu', 'compressed': True}
    got = effective(cfg)
    assert got['device'] == 'cpu' and got['compressed'] is True
    assert got['require_gpu'] is True and got['deadline_ms'] == 33.0   # the file's, untouched


def test_detector_picks_its_lean_bundle_unless_the_file_or_variant_names_one():
    assert effective(monitor_node_config(detector='earlin')) == {'detector': 'earlin',
                                                                 'model': 'earlin_lite0'}
    # the file's model stays; a conflicting detector makes the node refuse it (exit 2)
    cfg = monitor_node_config(detector='vae', params_file=str(CONFIG / 'earlin.yaml'))
    assert effective(cfg)['model'] == 'earlin_lite0' and effective(cfg)['detector'] == 'vae'
    cfg = monitor_node_config(detector='vae', variant='vae_baseline',
                              params_file=str(CONFIG / 'earlin.yaml'))
    assert effective(cfg)['model'] == 'vae_baseline'


def test_flags_pass_through_as_booleans_and_namespace_is_cleaned():
    cfg = monitor_node_config(require_gpu='true', managed='True', overlay='off',
                              forward_features='1', namespace='/front/', image_topic='/cam/')
    assert cfg['parameters'] == [{'require_gpu': True, 'overlay_rate': 0.0,
                                  'forward_features': True}]
    assert cfg['executable'] == 'managed_ood_monitor'          # a lifecycle node
    on = monitor_node_config(overlay='true')
    assert on['parameters'] == [{'overlay_rate': 5.0}] and on['executable'] == 'ood_monitor'
    assert cfg['namespace'] == 'front'
    assert ('image/compressed', '/cam/compressed') in cfg['remappings']


@pytest.mark.parametrize('kwargs,message', [
    ({'detector': 'yolo'}, 'detector'), ({'device': 'tpu'}, 'device'),
    ({'compressed': 'maybe'}, 'compressed'), ({'image_topic': ''}, 'image_topic'),
    ({'require_gpu': 'y'}, 'require_gpu'), ({'managed': '2'}, 'managed'),
    ({'params_file': '/no/such.yaml'}, 'no such file'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        monitor_node_config(**kwargs)


def test_a_params_file_that_is_not_a_parameter_file(tmp_path):
    (tmp_path / 'list.yaml').write_text('- 1\n- 2\n')
    (tmp_path / 'broken.yaml').write_text('a: [\n')
    for name in ('list.yaml', 'broken.yaml'):
        with pytest.raises(ValueError, match='params_file'):
            monitor_node_config(params_file=str(tmp_path / name))


def test_parse_bool():
    assert parse_bool('x', 'TRUE') and not parse_bool('x', 'off')


def test_cloud_part_takes_the_file_and_given_arguments():
    earlin = str(CONFIG / 'earlin.yaml')
    assert cloud_node_config()['parameters'] == [{'model': 'earlin_lite0'}]
    cfg = cloud_node_config(params_file=earlin)
    assert cfg['parameters'] == [earlin]
    assert effective(cfg, 'collaborative_inference')['threads'] == 2
    assert cloud_node_config(device='gpu', params_file=earlin)['parameters'][-1] == \
        {'device': 'gpu'}
    with pytest.raises(ValueError, match='device'):
        cloud_node_config(device='npu')


def test_gate_config():
    cfg = gate_node_config(namespace='/front/', cmd_vel_in='/nav/cmd_vel')
    assert cfg['namespace'] == 'front' and cfg['parameters'] == []
    assert cfg['remappings'] == [('cmd_vel_in', '/nav/cmd_vel'), ('cmd_vel_out', '/cmd_vel')]
    with pytest.raises(ValueError, match='two different'):
        gate_node_config(cmd_vel_in='/cmd_vel')


@pytest.mark.parametrize('returncode,shutting_down,fails', [
    (0, False, False), (2, False, True), (-15, True, False), (1, True, False)])
def test_a_required_node_that_exits_ends_the_launch(returncode, shutting_down, fails):
    if fails:
        with pytest.raises(RuntimeError, match=f'ood_monitor exited with code {returncode}'):
            required_exit('ood_monitor', returncode, shutting_down)
    else:
        assert required_exit('ood_monitor', returncode, shutting_down) == 'ood_monitor exited'


@pytest.mark.parametrize('launch_file', sorted((REPO / 'launch').glob('*.launch.py')))
def test_launch_files_are_thin_and_use_the_shared_api(launch_file):
    """Check what can be checked without `launch` (not installable here).

    The file parses, defines generate_launch_description, imports only the API shared by
    Humble/Jazzy/Kilted, and keeps its logic in leanood_ros.
    """
    tree = ast.parse(launch_file.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in names
    allowed = {'launch', 'launch.actions', 'launch.substitutions', 'launch_ros.actions',
               'launch.event_handlers',
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
    """Evaluate a launch file against recording stand-ins of the launch API.

    The real `launch` package is not installable here.  Returns its declared arguments, the
    Node actions it would start and the exit handlers it registers.
    """
    import importlib.util
    import sys
    import types

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]
    mods = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.substitutions', 'launch.event_handlers',
        'launch_ros', 'launch_ros.actions')}
    mods['launch'].LaunchDescription = lambda entities: list(entities)
    for cls in ('DeclareLaunchArgument', 'OpaqueFunction', 'RegisterEventHandler', 'Shutdown'):
        setattr(mods['launch.actions'], cls, type(cls, (_Recorder,), {}))
    mods['launch.event_handlers'].OnProcessExit = type('OnProcessExit', (_Recorder,), {})
    mods['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    mods['launch_ros.actions'].Node = type('Node', (_Recorder,), {})
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('launch_under_test', launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description()
    declared = {e.args[0]: e.kwargs for e in entities
                if type(e).__name__ == 'DeclareLaunchArgument'}
    for name, kw in declared.items():
        if 'choices' in kw:   # what DeclareLaunchArgument itself enforces
            assert kw['default_value'] in kw['choices'], name
            if name in arguments:
                assert arguments[name] in kw['choices'], f'launch rejects {name}'
    context = {name: kw['default_value'] for name, kw in declared.items()} | arguments
    started = [a for e in entities if type(e).__name__ == 'OpaqueFunction'
               for a in e.kwargs['function'](context)]
    nodes = [a for a in started if type(a).__name__ == 'Node']
    handlers = {id(h.args[0].kwargs['target_action']): h.args[0].kwargs['on_exit']
                for h in started if type(h).__name__ == 'RegisterEventHandler'}
    return declared, nodes, handlers


def _exit(handler, name, returncode, shutting_down=False):
    """Call an OnProcessExit callback as launch does; return the Shutdown reason."""
    import types
    (shutdown,) = handler(types.SimpleNamespace(process_name=name, returncode=returncode),
                          types.SimpleNamespace(is_shutdown=shutting_down))
    assert type(shutdown).__name__ == 'Shutdown'
    return shutdown.kwargs['reason']


def _every_node_is_required(nodes, handlers):
    assert set(handlers) == {id(n) for n in nodes}
    for n in nodes:
        assert n.kwargs['emulate_tty'] is True and n.kwargs['output'] == 'screen'
        on_exit = handlers[id(n)]
        assert _exit(on_exit, 'x', 0) == 'x exited'          # a finished node ends the launch
        assert _exit(on_exit, 'x', -2, shutting_down=True) == 'x exited'
        with pytest.raises(RuntimeError, match='exited with code 2'):   # ros2 launch exits 1
            _exit(on_exit, 'x', 2)


def test_monitor_launch_file_alone_with_a_params_file(monkeypatch):
    f = str(CONFIG / 'jetson_gpu.yaml')
    declared, nodes, handlers = _run_launch_file(REPO / 'launch' / 'ood_monitor.launch.py',
                                                 monkeypatch, params_file=f)
    assert set(declared) >= {'detector', 'variant', 'device', 'require_gpu', 'image_topic',
                             'compressed', 'params_file', 'namespace', 'forward_features',
                             'managed', 'overlay', 'safety_gate', 'cmd_vel_in', 'cmd_vel_out'}
    (node,) = nodes
    assert node.kwargs['executable'] == 'ood_monitor'
    assert node.kwargs['parameters'] == [f]             # the file alone: nothing overrides it
    assert effective(node.kwargs)['require_gpu'] is True
    _every_node_is_required(nodes, handlers)


def test_monitor_launch_file_with_arguments_and_the_gate(monkeypatch):
    _, nodes, handlers = _run_launch_file(
        REPO / 'launch' / 'ood_monitor.launch.py', monkeypatch, detector='earlin',
        namespace='front', params_file=str(CONFIG / 'jetson_cpu.yaml'), safety_gate='true',
        cmd_vel_in='/nav/cmd_vel')
    monitor, gate = nodes
    assert monitor.kwargs['namespace'] == gate.kwargs['namespace'] == 'front'
    assert effective(monitor.kwargs)['model'] == 'earlin_lite0'
    assert effective(monitor.kwargs)['threads'] == 2
    assert gate.kwargs['executable'] == 'safety_gate'
    assert gate.kwargs['parameters'] == [str(CONFIG / 'jetson_cpu.yaml')]
    assert ('cmd_vel_in', '/nav/cmd_vel') in gate.kwargs['remappings']
    _every_node_is_required(nodes, handlers)


@pytest.mark.parametrize('arguments,message', [
    ({'detector': 'yolo'}, 'detector'), ({'device': 'tpu'}, 'device'),
    ({'safety_gate': 'maybe'}, 'safety_gate'), ({'params_file': '/nope.yaml'}, 'no such'),
])
def test_monitor_launch_file_rejects_invalid_choices(monkeypatch, arguments, message):
    with pytest.raises(ValueError, match=message):
        _run_launch_file(REPO / 'launch' / 'ood_monitor.launch.py', monkeypatch, **arguments)


def test_collaborative_launch_sides(monkeypatch):
    f = REPO / 'launch' / 'collaborative.launch.py'
    _, both, handlers = _run_launch_file(f, monkeypatch)
    assert [n.kwargs['executable'] for n in both] == ['ood_monitor', 'collaborative_inference']
    assert both[0].kwargs['parameters'][-1]['forward_features'] is True
    _every_node_is_required(both, handlers)   # the cloud part ends when the edge dies
    _, edge, _ = _run_launch_file(f, monkeypatch, side='edge')
    _, cloud, _ = _run_launch_file(f, monkeypatch, side='cloud', device='gpu')
    assert [n.kwargs['executable'] for n in edge] == ['ood_monitor']
    assert [n.kwargs['executable'] for n in cloud] == ['collaborative_inference']
    assert cloud[0].kwargs['parameters'][-1] == {'model': 'earlin_lite0', 'device': 'gpu'}
    earlin = str(CONFIG / 'earlin.yaml')
    _, both, _ = _run_launch_file(f, monkeypatch, params_file=earlin)
    assert effective(both[0].kwargs)['input_timeout'] == 0.5
    assert both[1].kwargs['parameters'] == [earlin]
    with pytest.raises(AssertionError, match='launch rejects side'):
        _run_launch_file(f, monkeypatch, side='moon')


def test_demo_launch_plays_the_sample_into_the_monitor(monkeypatch):
    _, nodes, handlers = _run_launch_file(REPO / 'launch' / 'demo.launch.py', monkeypatch,
                                          shift='fog', detector='earlin')
    monitor, replay = nodes
    params = replay.kwargs['parameters'][0]
    assert params['recording'] == 'sample' and params['shift'] == 'fog'
    assert params['loop'] is True
    assert params['wait_for_subscribers'] == 1      # playback waits for the monitor
    assert ('image', '/camera/image_raw') in replay.kwargs['remappings']
    assert ('image', '/camera/image_raw') in monitor.kwargs['remappings']
    assert effective(monitor.kwargs)['model'] == 'earlin_lite0'
    _every_node_is_required(nodes, handlers)   # the monitor ends with the camera


def test_replay_config_rejects_bad_numbers():
    from leanood_ros.launch_config import replay_node_config
    with pytest.raises(ValueError, match='numbers'):
        replay_node_config(rate='fast')
