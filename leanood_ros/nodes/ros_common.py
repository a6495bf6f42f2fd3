"""Message helpers shared by the nodes (the only place that knows how tensors ride on ROS messages).

A split tensor (1 x C x H x W) travels as a `sensor_msgs/Image` with encoding `32FC<C>` or
`16FC<C>` in H x W x C layout: a stamped, standard message that cv_bridge-style tools parse.
"""
from __future__ import annotations

import numpy as np
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from sensor_msgs.msg import Image

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
        raise ValueError(f'not a forwarded tensor encoding: {enc!r}')
    dtype = np.float32 if enc.startswith('32F') else np.float16
    c = int(enc[4:])
    expected = msg.height * msg.width * c * np.dtype(dtype).itemsize
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != expected:
        raise ValueError(f'tensor message has {buf.size} bytes, expected {expected}')
    hwc = buf.view(dtype).reshape(msg.height, msg.width, c)
    return hwc.transpose(2, 0, 1)[None]


def run_node(name: str, make_node, startup_errors=(), spin=None, args=None) -> int:
    """The one main() of every node: start-up errors exit 2 with a readable message, SIGINT and
    SIGTERM shut down cleanly (exit 0), whenever they arrive."""
    try:
        rclpy.init(args=args)
        try:
            node = make_node()
        except (ParameterException, ValueError, *startup_errors) as exc:
            rclpy.logging.get_logger(name).fatal(f'cannot start: {exc}')
            return 2
        try:
            (spin or rclpy.spin)(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            getattr(node, 'close', lambda: None)()
            node.destroy_node()
    except KeyboardInterrupt:  # a signal during start-up or shutdown
        pass
    finally:
        rclpy.try_shutdown()
    return 0
