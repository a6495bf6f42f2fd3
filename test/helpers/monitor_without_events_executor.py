"""`ood_monitor` on an rclpy without the EventsExecutor, as Humble's and Jazzy's.

    python test/helpers/monitor_without_events_executor.py --ros-args -p model:=...

`rclpy.experimental` cannot be imported (None in sys.modules); everything else is the real node.
"""
import sys

sys.modules['rclpy.experimental'] = None   # `import rclpy.experimental` raises ImportError

from leanood_ros.nodes import ood_monitor  # noqa: E402  after the module is hidden

if __name__ == '__main__':
    sys.exit(ood_monitor.main())
