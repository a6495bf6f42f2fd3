"""`managed_ood_monitor`: the ood_monitor as a managed (lifecycle) node, for nav2-style bring-up.

    python -m leanood_ros.nodes.managed_ood_monitor --ros-args -p model:=vae_lean \
        [-p autostart:=false]

Same topics and parameters as `ood_monitor`, driven through the standard lifecycle services
(`<node>/change_state`, `<node>/get_state`): configure loads, validates and warms up the bundle
and creates the publishers (is_safe false, reason "inactive"); activate subscribes and judges;
deactivate stops judging and publishes is_safe false (reason "inactive"); cleanup and shutdown
release everything.  With `autostart` (default true) the node configures and activates itself at
start-up and exits with status 2 when it cannot; set it false when a lifecycle manager (nav2's
`lifecycle_manager`) drives the transitions.  Decision parameters are declared at the first
configure, with the bundle's recommended values as defaults.
"""
from __future__ import annotations

import sys
if __name__ == '__main__':  # first of all: a signal during the slow imports below exits 0
    from .signals import install
    install()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from .ood_monitor import MonitorShell, StartupError
from .ros_common import run_node
from ..backends import BackendError
from ..bundle import BundleError

INACTIVE = 'inactive'
_CONFIGURE_ERRORS = (BundleError, BackendError, StartupError, ParameterException, ValueError)


class ManagedOodMonitor(MonitorShell, LifecycleNode):
    def __init__(self, **kwargs):
        LifecycleNode.__init__(self, 'ood_monitor', **kwargs)
        self._init_shell()
        self._failure = ''
        autostart = self.declare_parameter('autostart', True, ParameterDescriptor(
            description='Configure and activate at start-up (false: wait for a lifecycle '
                        'manager).', read_only=True)).value
        if autostart:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise StartupError(self._failure or 'configure failed')
            if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise StartupError('activate failed')

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self._configure()
        except _CONFIGURE_ERRORS as exc:
            self._failure = str(exc)
            self.get_logger().error(f'cannot configure: {exc}')
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        self._publish_inactive()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        self._publish_inactive()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._cleanup()
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def _publish_inactive(self) -> None:
        """is_safe false and a /diagnostics status saying why: not judging."""
        self._publish_safe(False)
        st = DiagnosticStatus(level=DiagnosticStatus.WARN, name=f'{self.get_name()}: OOD monitor',
                              message=INACTIVE, hardware_id=self.bundle.name)
        msg = DiagnosticArray(status=[st])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def close(self) -> None:
        self._deactivate()


def main(args=None) -> int:
    return run_node('managed_ood_monitor', ManagedOodMonitor,
                    (BundleError, BackendError, StartupError), args=args)


if __name__ == '__main__':
    sys.exit(main())
