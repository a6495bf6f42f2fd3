"""Message helpers shared by the nodes (the only place that knows how tensors ride on messages).

A split tensor (1 x C x H x W) travels as a `sensor_msgs/Image` with encoding `32FC<C>` or
`16FC<C>` in H x W x C layout: a stamped, standard message that cv_bridge-style tools parse.
"""
from __future__ import annotations

import importlib

import numpy as np
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image

from . import signals
from ..image_conversion import shorten

_DTYPES = {np.dtype(np.float32): '32F', np.dtype(np.float16): '16F'}


def forwarded_tensor_message(header, tensor: np.ndarray, dtype: str = 'float32') -> Image:
    t = np.asarray(tensor)
    if t.ndim != 4 or t.shape[0] != 1:
        raise ValueError(f'expected a 1xCxHxW tensor, got shape {t.shape}')
    t = t.astype(np.dtype(dtype), copy=False)
    if t.dtype not in _DTYPES:
        raise ValueError(f'cannot forward {t.dtype} tensors (float32 or float16)')
    hwc = np.ascontiguousarray(t[0].transpose(1, 2, 0))
    c = hwc.shape[2]
    msg = Image(header=header, height=hwc.shape[0], width=hwc.shape[1],
                encoding=f'{_DTYPES[hwc.dtype]}C{c}', is_bigendian=0,
                step=hwc.shape[1] * c * hwc.dtype.itemsize)
    msg.data = hwc.tobytes()
    return msg


def tensor_from_message(msg: Image) -> np.ndarray:
    """Inverse of `forwarded_tensor_message`: 1 x C x H x W array."""
    enc = msg.encoding
    if not (enc[:3] in ('32F', '16F') and enc[3:4] == 'C' and enc[4:].isdigit()):
        raise ValueError(f'not a forwarded tensor encoding: {shorten(enc)}')
    dtype = np.float32 if enc.startswith('32F') else np.float16
    c = int(enc[4:])
    expected = msg.height * msg.width * c * np.dtype(dtype).itemsize
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != expected:
        raise ValueError(f'tensor message has {buf.size} bytes, expected {expected}')
    hwc = buf.view(dtype).reshape(msg.height, msg.width, c)
    return hwc.transpose(2, 0, 1)[None]


class NodeExit(Exception):
    """Raised from a callback to end the node with a given exit status (e.g. the watchdog)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def run_node(name: str, make_node, startup_errors=(), spin=None, args=None) -> int:
    """Run a node: the one main() of every node.

    Start-up errors exit 2 with a readable message; SIGINT and SIGTERM end it cleanly with status 0
    whenever they arrive (see `signals`), after the node's `close()` (which may publish a last
    message); a callback may end it with `NodeExit`.
    """
    signals.install()
    if signals.requested():
        return 0
    node, status = None, 0
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # ours instead
        if signals.requested():
            return 0
        try:
            node = make_node()
        except (ParameterException, ValueError, *startup_errors) as exc:
            if signals.requested():   # stopped while starting: not a start-up error
                return 0
            rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
            return 2
        try:
            if spin is None:
                _spin(node)
            else:   # a loop of the node's own: a signal ends it with KeyboardInterrupt
                with signals.interrupting():
                    spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except NodeExit as exc:
            node.get_logger().fatal(str(exc))
            status = exc.status
    finally:
        if node is not None:
            getattr(node, 'close', lambda: None)()
            node.destroy_node()
        rclpy.try_shutdown()
    return status


def events_executor_missing() -> str | None:
    """Return why `executor:=events` cannot run here, or None if it can."""
    try:   # Kilted and later
        importlib.import_module('rclpy.experimental').EventsExecutor
    except (ImportError, AttributeError):
        return ("executor 'events' needs rclpy's EventsExecutor (rclpy.experimental, ROS 2 "
                "Kilted and later); this rclpy has none: use executor:='single_threaded'")
    return None


def _executor(kind: str):
    if kind == 'events':   # C++: takes and dispatches without rebuilding a wait set per message
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    return rclpy.get_global_executor()   # a SingleThreadedExecutor


def _spin(node) -> None:
    executor = _executor(getattr(node, 'executor_kind', 'single_threaded'))
    executor.add_node(node)
    try:
        while rclpy.ok() and not signals.requested():
            executor.spin_once(timeout_sec=0.1)   # returns so that a signal is seen promptly
    finally:
        executor.remove_node(node)
