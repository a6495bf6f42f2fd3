"""SIGINT/SIGTERM for the nodes: a clean exit 0 whenever they arrive.

Stdlib only, so that a node module can install it before its slow imports.

Python's defaults would turn a signal during start-up into a traceback (SIGINT) or an abrupt
kill (SIGTERM), and rclpy's own handlers shut the context down before the node could publish a
final `is_safe=false`.  So the nodes install these instead (rclpy is initialised without its
handlers): a signal only *requests* the stop, which `run_node` honours between start-up steps
and in its spin loop; inside a node's own spin loop it also raises KeyboardInterrupt.
"""
from __future__ import annotations

from contextlib import contextmanager
import signal
import threading

_requested = threading.Event()
_interrupt = False


def _handler(signum, frame) -> None:
    _requested.set()
    if _interrupt:
        raise KeyboardInterrupt


def install() -> None:
    """Take over SIGINT and SIGTERM (idempotent; main thread only)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def requested() -> bool:
    return _requested.is_set()


@contextmanager
def interrupting():
    """While inside, a signal raises KeyboardInterrupt (and one that came before raises now)."""
    global _interrupt
    _interrupt = True
    try:
        if _requested.is_set():
            raise KeyboardInterrupt
        yield
    finally:
        _interrupt = False
