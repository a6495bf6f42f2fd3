"""What the launch files compute, kept out of them so that it is plain, tested Python.

Each `*_node_config` maps launch arguments (all strings) to a node's namespace, parameters and
remappings, and raises ValueError on a bad argument before anything starts.  An empty argument
means "not given": only the arguments a user gave override `params_file`, so precedence is
argument given > `params_file` > the bundle's recommendation > the node's default.
"""
from __future__ import annotations

from pathlib import Path

from .backends import DEVICES

DEFAULT_VARIANT = {'vae': 'vae_lean', 'earlin': 'earlin_lite0'}
DETECTORS = tuple(DEFAULT_VARIANT)
OVERLAY_RATE = 5.0   # Hz: enough to watch in rqt_image_view / Foxglove, cheap on the robot
_TRUE, _FALSE = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')


def parse_bool(name: str, text: str) -> bool:
    t = str(text).strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"launch argument {name} must be true or false, got '{text}'")


def _choice(name: str, text: str, choices) -> str:
    if text not in choices:
        raise ValueError(f'launch argument {name} must be one of {tuple(choices)}, got {text!r}')
    return text


def file_parameters(params_file: str, node_name: str) -> dict:
    """Return the parameters a ROS 2 parameter file gives `node_name`.

    Sections `node_name`, `/**/node_name` and `/**` count; ValueError when the file is missing
    or not a parameter file.
    """
    import yaml
    path = Path(params_file)
    if not path.is_file():
        raise ValueError(f'launch argument params_file: no such file {params_file}')
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f'launch argument params_file: {params_file} is not YAML '
                         f'({exc})') from exc
    if not isinstance(doc, dict):
        raise ValueError(f'launch argument params_file: {params_file} is not a parameter file')
    found = {}
    for key, section in doc.items():
        if str(key).rstrip('/').split('/')[-1] in (node_name, '**', '*') and \
                isinstance(section, dict):
            found.update(section.get('ros__parameters') or {})
    return found


def _topic_remappings(image_topic: str) -> list:
    if not image_topic:
        raise ValueError('launch argument image_topic must not be empty')
    topic = image_topic.rstrip('/')
    # Raw frames arrive on `image`, compressed ones on `image/compressed` (image_transport's
    # naming), both relative to the node so a namespace separates several monitors.
    return [('image', topic), ('image/compressed', topic + '/compressed')]


def monitor_node_config(detector: str = '', variant: str = '', device: str = '',
                        image_topic: str = '/camera/image_raw', compressed: str = '',
                        params_file: str = '', namespace: str = '', forward_features: str = '',
                        require_gpu: str = '', managed: str = '', overlay: str = '') -> dict:
    from_file = file_parameters(params_file, 'ood_monitor') if params_file else {}
    overrides = {}
    if detector:
        overrides['detector'] = _choice('detector', detector, DETECTORS)
    if variant:
        overrides['model'] = variant
    elif detector and 'model' not in from_file:
        overrides['model'] = DEFAULT_VARIANT[detector]   # the family's lean bundle
    if device:
        overrides['device'] = _choice('device', device, DEVICES)
    for name, text in (('compressed', compressed), ('forward_features', forward_features),
                       ('require_gpu', require_gpu)):
        if text:
            overrides[name] = parse_bool(name, text)
    if overlay:   # on: the overlay at OVERLAY_RATE; off: none, whatever the file says
        overrides['overlay_rate'] = OVERLAY_RATE if parse_bool('overlay', overlay) else 0.0
    # The file first, the given arguments after it: a later entry wins.
    parameters = ([params_file] if params_file else []) + ([overrides] if overrides else [])
    # a managed monitor is its own executable (a lifecycle node, autostarting by default)
    executable = 'managed_ood_monitor' if managed and parse_bool('managed', managed) \
        else 'ood_monitor'
    return {'namespace': namespace.strip('/'), 'parameters': parameters,
            'remappings': _topic_remappings(image_topic), 'executable': executable}


def replay_node_config(recording: str = 'sample', rate: str = '0.0', loop: str = 'false',
                       shift: str = '', shift_after_s: str = '5.0',
                       image_topic: str = '/camera/image_raw', compressed: str = 'false',
                       namespace: str = '', wait_for_subscribers: str = '0') -> dict:
    try:
        rate_v, after_v = float(rate), float(shift_after_s)
        wait_v = int(wait_for_subscribers)
    except ValueError as exc:
        raise ValueError('launch arguments rate, shift_after_s and wait_for_subscribers must '
                         f'be numbers ({exc})') from exc
    return {'namespace': namespace.strip('/'),
            'parameters': [{'recording': recording, 'rate': rate_v,
                            'loop': parse_bool('loop', loop), 'shift': shift,
                            'shift_after_s': after_v,
                            'compressed': parse_bool('compressed', compressed),
                            'wait_for_subscribers': wait_v}],
            'remappings': _topic_remappings(image_topic)}


def cloud_node_config(variant: str = '', device: str = '', namespace: str = '',
                      params_file: str = '') -> dict:
    overrides = {}
    if variant:
        overrides['model'] = variant
    elif not params_file or 'model' not in file_parameters(params_file,
                                                           'collaborative_inference'):
        overrides['model'] = DEFAULT_VARIANT['earlin']
    if device:
        overrides['device'] = _choice('device', device, DEVICES)
    return {'namespace': namespace.strip('/'),
            'parameters': ([params_file] if params_file else []) +
                          ([overrides] if overrides else [])}


def gate_node_config(params_file: str = '', namespace: str = '',
                     cmd_vel_in: str = '/cmd_vel_raw', cmd_vel_out: str = '/cmd_vel') -> dict:
    """Configure the safety_gate beside a monitor.

    Same namespace (it listens to the monitor's relative `ood/is_safe`), same parameter file
    (a `safety_gate` section configures it).
    """
    if not cmd_vel_in or not cmd_vel_out or cmd_vel_in == cmd_vel_out:
        raise ValueError('launch arguments cmd_vel_in and cmd_vel_out must be two different '
                         f'topics, got {cmd_vel_in!r} and {cmd_vel_out!r}')
    if params_file:
        file_parameters(params_file, 'safety_gate')
    return {'namespace': namespace.strip('/'),
            'parameters': [params_file] if params_file else [],
            'remappings': [('cmd_vel_in', cmd_vel_in), ('cmd_vel_out', cmd_vel_out)]}


def required_exit(name: str, returncode: int, shutting_down: bool) -> str:
    """Return why the launch ends when a required node has exited.

    A failure raises, which makes `ros2 launch` exit 1 (its only way to report a failed node);
    exits during shutdown are expected.
    """
    if returncode != 0 and not shutting_down:
        raise RuntimeError(f'{name} exited with code {returncode}')
    return f'{name} exited'


def end_launch_when_exits(node):
    """Make `node` required (launch glue: imports `launch`, so only launch files call it)."""
    from launch.actions import RegisterEventHandler, Shutdown
    from launch.event_handlers import OnProcessExit
    return RegisterEventHandler(OnProcessExit(
        target_action=node,
        on_exit=lambda event, context: [Shutdown(reason=required_exit(
            event.process_name, event.returncode, context.is_shutdown))]))
