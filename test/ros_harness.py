"""Helpers for integration tests: real node processes and a real in-test subscriber, over DDS."""
from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from leanood_ros.nodes.ros_common import events_executor_missing

try:
    from rclpy.subscription import MessageInfo
except ImportError:   # Humble
    MessageInfo = None

REPO = Path(__file__).resolve().parent.parent
# a test case for `executor:=events` runs only where rclpy has the EventsExecutor
NEEDS_EVENTS_EXECUTOR = pytest.mark.skipif(bool(events_executor_missing()),
                                           reason="rclpy's EventsExecutor: Kilted and later")


def ros_env(domain_id: int, **extra) -> dict:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               PYTHONUNBUFFERED='1', RCUTILS_COLORIZED_OUTPUT='0')
    paths = [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    # the package, and the test helpers (bundle_factory) for helper processes such as
    # test/helpers/synthetic_camera.py
    env['PYTHONPATH'] = os.pathsep.join([str(REPO), str(REPO / 'test')] + paths)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class RosProcess:
    """A child process whose combined output goes to a log file (read it with `.output()`)."""

    def __init__(self, args, domain_id, log_path: Path, **env):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen([sys.executable, *args], env=ros_env(domain_id, **env),
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO))

    @classmethod
    def node(cls, module, ros_args, domain_id, log_path, **env):
        return cls(['-m', module, '--ros-args', *ros_args], domain_id, log_path, **env)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=signal.SIGINT, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Listener:
    """An rclpy context of its own on the test's domain, recording messages per topic."""

    def __init__(self, domain_id: int, namespace: str = ''):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('test_listener', namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages, self.sent = {}, {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not self.context.ok():
                    return
                raise

    def subscribe(self, msg_type, topic, latched=False, depth=100):
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                         durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                                     else DurabilityPolicy.VOLATILE))
        self.messages[topic] = []
        self.sent[topic] = []

        def record(msg, info=None, topic=topic):
            with self._lock:
                self.messages[topic].append((time.monotonic(), msg))
                # when the publisher sent it (its host clock): unlike the receipt time, not
                # reordered across topics when this process is starved and catches up
                src = info['source_timestamp'] * 1e-9 if info else time.time()
                self.sent[topic].append((src, msg))
        if MessageInfo is None:        # rclpy before Iron: no message info
            self.node.create_subscription(msg_type, topic, lambda m: record(m), qos)
        else:
            self.node.create_subscription(msg_type, topic, lambda m, i: record(m, i), qos)

    def get(self, topic):
        with self._lock:
            return list(self.messages[topic])

    def get_sent(self, topic):
        """Return (publisher's send time in s since the epoch, message) pairs."""
        with self._lock:
            return list(self.sent[topic])

    def wait_for(self, predicate, timeout: float, poll: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
