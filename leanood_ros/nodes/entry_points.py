"""Console entry points of the nodes (`ros2 run leanood_ros <node>`).

They take over SIGINT/SIGTERM before the node's slow imports, so that a signal during them still
exits 0 (stdlib only).
"""
from __future__ import annotations

import importlib

from . import signals


def _run(module: str) -> int:
    signals.install()
    return importlib.import_module(f'leanood_ros.nodes.{module}').main()


def ood_monitor() -> int:
    return _run('ood_monitor')


def managed_ood_monitor() -> int:
    return _run('managed_ood_monitor')


def camera_replay() -> int:
    return _run('camera_replay')


def collaborative_inference() -> int:
    return _run('collaborative_inference')


def safety_gate() -> int:
    return _run('safety_gate')
