"""What the launch files compute, kept out of them so that it is plain, tested Python.

`monitor_node_config` maps launch arguments (all strings) to the `ood_monitor` node's name space,
parameters and remappings; it raises ValueError on a bad argument, before anything starts.
"""
from __future__ import annotations

from .backends import DEVICES

DEFAULT_VARIANT = {'vae': 'vae_lean', 'earlin': 'earlin_lite0'}
DETECTORS = tuple(DEFAULT_VARIANT)
_TRUE, _FALSE = ('true', '1', 'yes', 'on'), ('false', '0', 'no', 'off')


def parse_bool(name: str, text: str) -> bool:
    t = str(text).strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"launch argument {name} must be true or false, got '{text}'")


def monitor_node_config(detector: str = 'vae', variant: str = '', device: str = 'cpu',
                        image_topic: str = '/camera/image_raw', compressed: str = 'false',
                        params_file: str = '', namespace: str = '',
                        forward_features: str = 'false') -> dict:
    if detector not in DETECTORS:
        raise ValueError(f'launch argument detector must be one of {DETECTORS}, got {detector!r}')
    if device not in DEVICES:
        raise ValueError(f'launch argument device must be one of {DEVICES}, got {device!r}')
    if not image_topic:
        raise ValueError('launch argument image_topic must not be empty')
    overrides = {'detector': detector, 'model': variant or DEFAULT_VARIANT[detector],
                 'device': device, 'compressed': parse_bool('compressed', compressed),
                 'forward_features': parse_bool('forward_features', forward_features)}
    # A parameter file first, the launch arguments after it: the arguments win.
    parameters = ([params_file] if params_file else []) + [overrides]
    topic = image_topic.rstrip('/')
    return {
        'namespace': namespace.strip('/'),
        'parameters': parameters,
        # Raw frames arrive on `image`, compressed ones on `image/compressed` (image_transport's
        # naming), both relative to the node so a namespace separates several monitors.
        'remappings': [('image', topic), ('image/compressed', topic + '/compressed')],
    }


def replay_node_config(recording: str = 'sample', rate: str = '0.0', loop: str = 'false',
                       shift: str = '', shift_after_s: str = '5.0', image_topic: str = '/camera/image_raw',
                       compressed: str = 'false', namespace: str = '') -> dict:
    try:
        rate_v, after_v = float(rate), float(shift_after_s)
    except ValueError as exc:
        raise ValueError(f'launch arguments rate and shift_after_s must be numbers ({exc})') from exc
    topic = image_topic.rstrip('/')
    return {'namespace': namespace.strip('/'),
            'parameters': [{'recording': recording, 'rate': rate_v, 'loop': parse_bool('loop', loop),
                            'shift': shift, 'shift_after_s': after_v,
                            'compressed': parse_bool('compressed', compressed)}],
            'remappings': [('image', topic), ('image/compressed', topic + '/compressed')]}


def cloud_node_config(variant: str = 'earlin_lite0', device: str = 'cpu', namespace: str = '',
                      params_file: str = '') -> dict:
    if device not in DEVICES:
        raise ValueError(f'launch argument device must be one of {DEVICES}, got {device!r}')
    return {'namespace': namespace.strip('/'),
            'parameters': ([params_file] if params_file else []) +
                          [{'model': variant or DEFAULT_VARIANT['earlin'], 'device': device}]}
