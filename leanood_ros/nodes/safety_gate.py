"""`safety_gate`: lets velocity commands through only while `ood/is_safe` is true and fresh.

It sits between the controller and the base; the rules live in `leanood_ros.gate`.

    cmd_vel_in (controller) -> safety_gate -> cmd_vel_out (base)

Closed, it limits every command and also publishes on its own timer, so the base stops even
when the controller goes quiet.  Its state goes to `safety_gate/state` and /diagnostics.
"""
from __future__ import annotations

from dataclasses import fields
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist, TwistStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String

from .ros_common import run_node
from ..gate import DESCRIPTIONS, GateSettings, OPEN, SafetyGate, STALE, UNSAFE

_LEVEL = {OPEN: DiagnosticStatus.OK, UNSAFE: DiagnosticStatus.WARN,
          STALE: DiagnosticStatus.ERROR}


def _to_tuple(t: Twist) -> tuple:
    return (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z)


def _to_twist(v: tuple) -> Twist:
    t = Twist()
    t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z = v
    return t


class SafetyGateNode(Node):
    def __init__(self, **kwargs):
        super().__init__('safety_gate', **kwargs)
        defaults = GateSettings()
        values = {f.name: self.declare_parameter(f.name, getattr(defaults, f.name),
                                                 ParameterDescriptor(
                                                     description=DESCRIPTIONS[f.name],
                                                     read_only=True)).value
                  for f in fields(GateSettings)}
        self.settings = GateSettings(**values)   # GateSettings.problems: ValueError -> exit 2
        self.gate = SafetyGate(self.settings, on_transition=self._on_transition)
        self.msg_type = TwistStamped if self.settings.stamped else Twist
        self.frame_id = ''
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_state = self.create_publisher(String, 'safety_gate/state', latched)
        self.pub_out = self.create_publisher(self.msg_type, 'cmd_vel_out', 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._publish_state()
        self.create_subscription(Bool, 'ood/is_safe', self._on_is_safe, latched)
        self.create_subscription(self.msg_type, 'cmd_vel_in', self._on_command, 10)
        self.create_timer(1.0 / self.settings.stop_rate, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f'gating {self.resolve_topic_name("cmd_vel_in")} -> '
            f'{self.resolve_topic_name("cmd_vel_out")} ({self.msg_type.__name__}) on '
            f'{self.resolve_topic_name("ood/is_safe")}; closed: {self.settings.unsafe_action}, '
            f'heartbeat_timeout {self.settings.heartbeat_timeout:g} s; {self.gate.state} until '
            f'ood/is_safe says true')

    def _on_transition(self, old, new, reason) -> None:
        text = f'gate {old} -> {new}: {reason}'
        # one call site per severity: rclpy refuses a call site whose severity changes
        if new == OPEN:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)
        self._publish_state()

    def _publish_state(self) -> None:
        self.pub_state.publish(String(data=self.gate.state))

    def _on_is_safe(self, msg: Bool) -> None:
        command = self.gate.on_is_safe(msg.data)
        if command is not None:
            self._send(command)

    def _on_command(self, msg) -> None:
        if self.settings.stamped:
            self.frame_id = msg.header.frame_id
            self._send(self.gate.on_command(_to_tuple(msg.twist)), msg.header.stamp)
        else:
            self._send(self.gate.on_command(_to_tuple(msg)))

    def _tick(self) -> None:
        command = self.gate.tick()
        if command is not None:
            self._send(command)

    def _send(self, command: tuple, stamp=None) -> None:
        if not self.settings.stamped:
            self.pub_out.publish(_to_twist(command))
            return
        msg = TwistStamped(twist=_to_twist(command))
        msg.header.frame_id = self.frame_id
        msg.header.stamp = stamp or self.get_clock().now().to_msg()
        self.pub_out.publish(msg)

    def _publish_diagnostics(self) -> None:
        self.gate.evaluate()
        values = {'state': self.gate.state, 'unsafe_action': self.settings.unsafe_action,
                  'heartbeat_timeout': self.settings.heartbeat_timeout, **self.gate.counts}
        st = DiagnosticStatus(level=_LEVEL[self.gate.state],
                              name=f'{self.get_name()}: cmd_vel safety gate',
                              message=f'{self.gate.state}: {self.gate.reason}',
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[st])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


def main(args=None) -> int:
    return run_node('safety_gate', SafetyGateNode, args=args)


if __name__ == '__main__':
    sys.exit(main())
