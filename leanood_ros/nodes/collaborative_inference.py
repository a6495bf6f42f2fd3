"""`collaborative_inference`: the "cloud" half of an EARLIN split model.

Subscribes to the split tensors that `ood_monitor` (detector: earlin, forward_features: true)
forwards for in-distribution frames only, runs the rest of the network (the bundle's `cloud`
graph) and publishes the stamped prediction on `ood/prediction` as a
diagnostic_msgs/DiagnosticArray (header = the source frame's header; values: class_id, confidence,
top5), plus /diagnostics with frames and bytes received and latency.  Runs on any host of the
same DDS domain.
"""
from __future__ import annotations

import sys
if __name__ == '__main__':  # first of all: a signal during the slow imports below exits 0
    from .signals import install
    install()

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image

from .ros_common import run_node, tensor_from_message
from ..backends import BackendError, make_backend
from ..bundle import BundleError, load_bundle
from ..stats import LatencyWindow


class CollaborativeInference(Node):
    def __init__(self, **kwargs):
        super().__init__('collaborative_inference', **kwargs)

        def declare(name, default, description):
            return self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True)).value
        model = declare('model', 'earlin_lite0', 'EARLIN bundle (variant name or path).')
        device = declare('device', 'cpu', 'cpu or gpu.')
        threads = declare('threads', 2, 'Inference threads.')
        self.bundle = load_bundle(model)
        if 'cloud' not in self.bundle.graphs or not self.bundle.forward:
            raise BundleError(f'{self.bundle.path}: not a split model (no cloud graph)')
        self.backend = make_backend(self.bundle, 'cloud', 'onnxruntime', device, threads)
        self.expected = tuple(self.bundle.forward['shape'][1:])
        graph_in = next(i.shape for i in self.backend.session.get_inputs()
                        if i.name == self.bundle.graphs['cloud'].input)
        if any(isinstance(g, int) and g != e for g, e in zip(graph_in[1:], self.expected)) \
                or len(graph_in) != len(self.expected) + 1:
            raise BundleError(f'{self.bundle.path}: forward.shape {self.bundle.forward["shape"]} '
                              f'does not fit the cloud graph input {graph_in}')
        self.pub = self.create_publisher(DiagnosticArray, 'ood/prediction', 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Image, 'ood/features', self._on_tensor, 10)
        self.create_timer(1.0, self._diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.received = self.rejected = self.errors = self.bytes = self._errors_reported = 0
        self.last_error = ''
        self.latency = LatencyWindow()
        self.get_logger().info(f"finishing '{self.bundle.name}' on {self.backend.provider}")

    def _on_tensor(self, msg: Image) -> None:
        try:
            x = tensor_from_message(msg)
            if tuple(x.shape[1:]) != self.expected:
                raise ValueError(f'tensor shape {x.shape[1:]} != bundle {self.expected}')
        except ValueError as exc:
            self.rejected += 1
            self.get_logger().warning(f'rejected tensor: {exc}', throttle_duration_sec=2.0)
            return
        try:
            probs = self.backend.run(np.ascontiguousarray(x, dtype=np.float32))['probabilities'][0]
        except Exception as exc:  # one bad tensor must not end the node
            self.errors += 1
            self.last_error = f'{type(exc).__name__}: {str(exc)[:200]}'
            self.get_logger().error(f'cloud inference failed: {self.last_error}',
                                    throttle_duration_sec=2.0)
            return
        top = np.argsort(probs)[::-1][:5]
        self.received += 1
        self.bytes += len(msg.data)
        self.latency.add((self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds
                         / 1e6)
        st = DiagnosticStatus(level=DiagnosticStatus.OK, name='prediction',
                              message=f'class {int(top[0])} ({probs[top[0]]:.3f})',
                              hardware_id=self.bundle.name, values=[
                                  KeyValue(key='class_id', value=str(int(top[0]))),
                                  KeyValue(key='confidence', value=f'{probs[top[0]]:.6f}'),
                                  KeyValue(key='top5', value=','.join(str(int(t)) for t in top))])
        self.pub.publish(DiagnosticArray(header=msg.header, status=[st]))

    def _diagnostics(self) -> None:
        kv = {'model': self.bundle.name, 'provider': self.backend.provider,
              'tensors_received': self.received, 'tensors_rejected': self.rejected,
              'inference_errors': self.errors,
              'bytes_received': self.bytes,
              'cloud_macs_per_frame': self.bundle.manifest.get('flops', {}).get('cloud_macs', ''),
              'latency_p50_ms': f'{self.latency.percentile(50):.2f}'}
        # an inference error since the last report turns the status to ERROR, with its cause
        failing = self.errors > self._errors_reported
        self._errors_reported = self.errors
        st = DiagnosticStatus(level=DiagnosticStatus.ERROR if failing else DiagnosticStatus.OK,
                              name=f'{self.get_name()}: cloud part',
                              message=(f'cloud inference failing: {self.last_error}' if failing
                                       else f'{self.received} predictions'),
                              hardware_id=self.bundle.name,
                              values=[KeyValue(key=k, value=str(v)) for k, v in kv.items()])
        msg = DiagnosticArray(status=[st])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


def main(args=None) -> int:
    return run_node('collaborative_inference', CollaborativeInference,
                    (BundleError, BackendError), args=args)


if __name__ == '__main__':
    sys.exit(main())
