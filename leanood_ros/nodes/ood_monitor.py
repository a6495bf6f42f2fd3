"""`ood_monitor`: judges each camera frame, tells the controller whether the camera is trustworthy.

A thin ROS shell around `leanood_ros.monitor.MonitorCore`: subscribe, keep only the newest frame,
judge it on a worker thread, publish the verdict; republish the state on a heartbeat and report
/diagnostics.  See the README for topics and parameters.

Nothing may end or silence the judging path: every exception in it is caught, counted and turns
the verdict unsafe; the heartbeat, the watchdog and /diagnostics run on the steady clock, so
`use_sim_time` without a /clock cannot stop them.
"""
from __future__ import annotations

if __name__ == '__main__':  # first of all: a signal during the slow imports below exits 0
    from .signals import install
    install()
from collections import deque
import queue
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from rclpy.subscription import Subscription
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float32, Header

from .ros_common import events_executor_missing, forwarded_tensor_message, NodeExit, run_node
from .. import cameras as multi
from .. import overlay
from .. import parameters as params
from ..backends import BackendError
from ..bundle import BundleError, load_bundle
from ..decision import DecisionEngine
from ..detectors import build_detector
from ..image_conversion import decode_compressed, decode_raw, FrameError, shorten
from ..memory import return_big_frames, trim_heap, TrimAfterBigFrame
from ..monitor import collaborative_accounting, MonitorCore
from ..serialized_image import read_compressed_image, read_image

_PTYPE = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          list: ParameterType.PARAMETER_STRING_ARRAY}
_LEVEL = {True: DiagnosticStatus.OK, False: DiagnosticStatus.WARN}
_SEVERITY = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
             'error': DiagnosticStatus.ERROR}
WATCHDOG_EXIT_STATUS = 3
# Iron and later hand a two-argument callback the MessageInfo (publication sequence numbers)
MESSAGE_INFO = hasattr(Subscription, 'CallbackType')


class StartupError(RuntimeError):
    pass


def _descriptor(spec: params.ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(type=_PTYPE[spec.type], description=spec.description,
                            read_only=spec.read_only)
    if spec.range is not None and spec.type is float:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                     to_value=float(spec.range[1]), step=0.0)]
    elif spec.range is not None and spec.type is int:
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]),
                                        to_value=int(spec.range[1]), step=1)]
    if spec.choices is not None:
        d.additional_constraints = 'one of: ' + ', '.join(repr(c) for c in spec.choices)
    return d


class Camera:
    """One camera: its subscription, newest-frame slot, decision state and verdict topics.

    Its `core` applies every fail-safe rule to this camera alone; all cameras share the shell's
    one detector (inference session) and worker thread.
    """

    def __init__(self, name: str, topic: str, prefix: str):
        self.name, self.topic, self.prefix = name, topic, prefix   # prefix: 'ood[/<name>]'
        self.decision = self.core = self.sub = self.slot = None
        self.pub_safe = self.pub_score = self.pub_status = None
        self.trim = TrimAfterBigFrame()

        # the per-frame messages, refilled for each verdict (publish serialises at once)
        self.score_msg, self.safe_msg = Float32(), Bool()

    def publishers(self):
        return (self.pub_safe, self.pub_score, self.pub_status)


def node_overhead_ms(received_at: float, v) -> float:
    """Return the node's own share of a verdict so far: receipt -> now, minus inference.

    (Conversion, preprocessing, decision and, once they are out, the verdict's publications.)
    """
    return (time.monotonic() - received_at) * 1e3 - (
        v.inference_ms if v.inference_ms == v.inference_ms else 0.0)


def _header(frame) -> Header:
    """Return the judged frame's header (built only for the messages that carry one)."""
    header = Header(frame_id=frame.frame_id)
    header.stamp.sec, header.stamp.nanosec = frame.stamp_sec, frame.stamp_nanosec
    return header


class MonitorShell:
    """The monitor's ROS side over a plain Node (`OodMonitorNode`) or a LifecycleNode.

    The LifecycleNode is `managed_ood_monitor`.  In the life-cycle steps: configure (load,
    validate and warm up the bundle, create the publishers), activate (subscribe, judge,
    heartbeat), deactivate (stop judging, publish unsafe), cleanup (release everything).
    """

    def _init_shell(self) -> None:
        self.get_logger().info(f'memory: {return_big_frames()}')
        self.decision = self.detector = self.bundle = None
        self.values = {}
        self.pub_safe = self.pub_diag = None
        self.pub_features = self.pub_overlay = None
        self.cameras, self._timers, self._worker = [], [], None
        self._next_camera = 0
        # validate in the on-set callback; apply after the set where rclpy can (Iron+),
        # else right after validating (Humble)
        self.add_on_set_parameters_callback(self._validate_parameters)
        # the executor spins the node from the start: chosen before any configure
        self.executor_kind = self._declare(params.BY_NAME['executor'])
        missing = events_executor_missing() if self.executor_kind == 'events' else None
        if missing:
            raise StartupError(missing)
        self._apply_on_validate = not hasattr(self, 'add_post_set_parameters_callback')
        if not self._apply_on_validate:
            self.add_post_set_parameters_callback(self._apply_parameters)

    def _configure(self) -> None:
        values = {}
        for name in ('model', 'detector', 'backend', 'device', 'require_gpu', 'threads'):
            values[name] = self._declare(params.BY_NAME[name])
        bundle = load_bundle(values['model'])
        if values['detector'] and bundle.family != values['detector']:
            raise StartupError(f"bundle {bundle.path} is a '{bundle.family}' detector but "
                               f"detector:='{values['detector']}' was requested")
        defaults = params.defaults(bundle.manifest.get('decision'))
        for spec in params.SPECS:
            if spec.name not in values:
                values[spec.name] = self._declare(spec, defaults[spec.name])
        if values['forward_features'] and not bundle.forward:
            raise StartupError(f'forward_features is set but bundle {bundle.name} has no '
                               f'split tensor to forward')
        detector = build_detector(bundle, values['backend'], values['device'], values['threads'],
                                  values['require_gpu'])
        if detector.fell_back:
            self.get_logger().warning(f'device=gpu requested but running on '
                                      f'{detector.provider}: {detector.fallback_reason} '
                                      f'(require_gpu:=true refuses to start instead)')
        getattr(detector, 'self_test', lambda: None)()   # known answers: BundleError -> exit 2
        try:   # a bundle that loads but cannot run refuses to start rather than judge blind
            self._warm_ms = detector.warm_up()
        except Exception as exc:
            raise StartupError(f'bundle {bundle.path} failed its warm-up inference: '
                               f'{type(exc).__name__}: {exc}') from exc
        decision = DecisionEngine(bundle.calibration_scores)
        problems = params.check_all(values, decision.pvalues.min_alpha)
        if problems:
            raise StartupError('invalid parameters: ' + '; '.join(problems))
        cams = self._cameras(values)
        for cam in cams:   # each camera its own decision state, all the same settings
            cam.decision = DecisionEngine(bundle.calibration_scores)
            cam.decision.reconfigure(params.decision_config(values))
        self.bundle, self.detector, self.values = bundle, detector, values
        self.decision, self.cameras = cams[0].decision, cams

        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_safe = self.create_publisher(Bool, 'ood/is_safe', latched)
        for cam in cams:
            cam.pub_safe = (self.pub_safe if len(cams) == 1 else
                            self.create_publisher(Bool, f'{cam.prefix}/is_safe', latched))
            cam.pub_score = self.create_publisher(Float32, f'{cam.prefix}/score', 10)
            cam.pub_status = self.create_publisher(DiagnosticArray, f'{cam.prefix}/status', 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.pub_features = (self.create_publisher(Image, 'ood/features', 10)
                             if values['forward_features'] else None)
        self.pub_overlay = None   # off by default: no publisher, no rendering
        if values['overlay_rate'] > 0:
            self.pub_overlay = self.create_publisher(Image, 'ood/overlay', 1)
            self._scores = deque(maxlen=64)
        trim_heap()   # what loading, self-test and warm-up freed (1.2 MB at vae_lean)

    def _cameras(self, values) -> list:
        """Return the cameras `image_topics` names, or the one camera on `image`."""
        topics = values['image_topics']
        if not topics:
            return [Camera('', 'image/compressed' if values['compressed'] else 'image', 'ood')]
        if values['forward_features'] or values['overlay_rate'] > 0:
            raise StartupError(f'forward_features and overlay_rate need one camera; '
                               f'image_topics has {len(topics)}')
        try:
            names = multi.camera_names(topics, values['camera_names'])
        except ValueError as exc:
            raise StartupError(f'invalid parameters: {exc}') from exc
        return [Camera(n, t, f'ood/{n}') for n, t in zip(names, topics)]

    def _activate(self) -> None:
        values = self.values
        settings = params.monitor_settings(values)
        for cam in self.cameras:   # every activation starts from "waiting for the first frame"
            cam.decision.reset()
            cam.core = MonitorCore(self.detector, cam.decision, settings)
            cam.slot = None
        self.forwarded = self.withheld = self.bytes_forwarded = 0
        self._overlay_due = 0.0
        # input: keep only the newest frame; a worker thread judges it
        qos = QoSProfile(depth=values['qos_depth'], history=HistoryPolicy.KEEP_LAST,
                         reliability=(ReliabilityPolicy.RELIABLE
                                      if values['qos_reliability'] == 'reliable'
                                      else ReliabilityPolicy.BEST_EFFORT))
        self._slot_lock = threading.Lock()
        # a token wakes the idle worker: SimpleQueue's put/get are C, an Event's set/wait are
        # Python over a Condition (40 us more per hand-off at 30 Hz here)
        self._wake, self._idle = queue.SimpleQueue(), False
        self._stop = threading.Event()
        self._busy_since = None   # steady time at which the worker took its current frame
        self._worker = threading.Thread(target=self._work, name='ood_judge', daemon=True)
        self._worker.start()
        # raw: the serialized bytes, read by `serialized_image` - rclpy builds no message (and
        # no copy of the pixels) per frame, and a frame is refused before its data is touched
        self._read = read_compressed_image if values['compressed'] else read_image
        msg_type = CompressedImage if values['compressed'] else Image
        for cam in self.cameras:
            cam.sub = self.create_subscription(msg_type, cam.topic, self._callback(cam), qos,
                                               raw=True)
        steady = Clock(clock_type=ClockType.STEADY_TIME)   # whatever use_sim_time says
        self._timers = [
            self.create_timer(1.0 / values['heartbeat_rate'], self._heartbeat, clock=steady),
            self.create_timer(1.0 / values['diagnostics_rate'], self._publish_diagnostics,
                              clock=steady)]
        self._publish_safe(False)  # unsafe until the first frame has been judged
        self.get_logger().info(
            f"judging {', '.join(c.sub.topic_name for c in self.cameras)} with "
            f"'{self.bundle.name}' ({self.bundle.family}) "
            f'on {self.detector.provider}; fusion={values["fusion"]}, alpha={values["alpha"]}; '
            f'warm-up inference {self._warm_ms:.1f} ms')

    def _deactivate(self) -> None:
        """Stop judging and tell the controller, before anything else goes: unsafe."""
        if self._worker is not None:
            self._stop.set()
            self._wake.put(None)
            self._worker.join(timeout=2.0)
            self._worker = None
        for cam in self.cameras:
            if cam.sub is not None:
                self.destroy_subscription(cam.sub)
                cam.sub = None
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        if self.pub_safe is not None:
            self._publish_safe(False)
            self.pub_safe.wait_for_all_acked(Duration(seconds=0.5))

    def _cleanup(self) -> None:
        pubs = {self.pub_safe, self.pub_diag, self.pub_features, self.pub_overlay}
        for cam in self.cameras:
            pubs.update(cam.publishers())
        for pub in pubs - {None}:
            self.destroy_publisher(pub)
        self.pub_safe = self.pub_diag = self.pub_features = self.pub_overlay = None
        self.decision = self.detector = self.bundle = None
        self.cameras = []

    # -- parameters ---------------------------------------------------------------------------
    def _declare(self, spec, default=None):
        if spec.type is list:   # an empty list default would be typed as a byte array
            if not self.has_parameter(spec.name):
                self.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, _descriptor(spec))
            try:
                return list(self.get_parameter(spec.name).value)
            except ParameterUninitializedException:
                return []
        if self.has_parameter(spec.name):   # declared at an earlier configure
            return self.get_parameter(spec.name).value
        value = spec.default if default is None else default
        return self.declare_parameter(spec.name, value, _descriptor(spec)).value

    def _validate_parameters(self, changes) -> SetParametersResult:
        for p in changes:
            msg = params.check_value(p.name, p.value)
            if msg:
                return SetParametersResult(successful=False, reason=msg)
        if self.decision is None:  # not configured yet: single values checked, the rest follows
            return SetParametersResult(successful=True)
        values = dict(self.values)
        values.update({p.name: p.value for p in changes if p.name in params.BY_NAME})
        problems = params.check_all(values, self.decision.pvalues.min_alpha)
        if problems:
            return SetParametersResult(successful=False, reason='; '.join(problems))
        if self._apply_on_validate:
            self._apply_parameters(changes)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, changes) -> None:
        if self.decision is None:
            return
        self.values = dict(self.values)
        self.values.update({p.name: p.value for p in changes if p.name in params.BY_NAME})
        for cam in self.cameras:
            cam.decision.reconfigure(params.decision_config(self.values))
            if cam.core is not None:
                cam.core.settings = params.monitor_settings(self.values)
        self.get_logger().info('parameters updated: ' +
                               ', '.join(f'{p.name}={p.value}' for p in changes))

    # -- input --------------------------------------------------------------------------------
    def _callback(self, cam: Camera):
        # two arguments: rclpy passes the MessageInfo (its EventsExecutor fails on them: 9.1)
        if MESSAGE_INFO and self.executor_kind != 'events':
            return lambda msg, info: self._on_image(cam, msg, info)
        return lambda msg: self._on_image(cam, msg)

    def _on_image(self, cam: Camera, msg: bytes, info=None) -> None:
        now = time.monotonic()
        if info is None:
            cam.core.frame_received(now)
        else:   # the publisher's GID where rclpy gives it (Kilted), else one unnamed publisher
            gid = info.get('publisher_gid')
            cam.core.frame_received(now, gid and gid['data'],
                                    info.get('publication_sequence_number'))
        with self._slot_lock:
            if cam.slot is not None:
                cam.core.frame_skipped()
            # wall-clock receipt too: stamp -> receipt is the transport time (same host clock);
            # the ROS clock (sim time if used) at receipt judges the stamp
            cam.slot = (msg, now, time.time_ns(), self.get_clock().now().nanoseconds)
            wake, self._idle = self._idle, False
        if wake:   # one token at most: a busy worker takes the frame when it is done
            self._wake.put(None)
        time.sleep(0)   # hand the GIL to the judging thread now, not when the executor waits

    def _take(self):
        """Return the next camera with a waiting frame (in turn: none starves) and the frame."""
        with self._slot_lock:
            n = len(self.cameras)
            for k in range(n):
                cam = self.cameras[(self._next_camera + k) % n]
                if cam.slot is not None:
                    self._next_camera = (self._next_camera + k + 1) % n
                    item, cam.slot = cam.slot, None
                    return cam, item
            self._idle = True   # the next frame wakes the worker
        return None, None

    def _work(self) -> None:
        while not self._stop.is_set():
            cam, item = self._take()
            if cam is None:
                try:   # with a timeout: a stop is seen even without its token
                    self._wake.get(timeout=0.1)
                except queue.Empty:
                    pass
                continue
            self._busy_since = time.monotonic()
            try:
                self._judge(cam, *item)
            except Exception as exc:  # nothing may end the judging path: report, carry on
                what = f'{type(exc).__name__}: {exc}'
                cam.core.internal_error(what)
                self.get_logger().error(f'internal error while judging a frame: '
                                        f'{shorten(what, 200)}', throttle_duration_sec=2.0)
            finally:
                self._busy_since = None
            if cam.trim.after(len(item[0])):
                trim_heap()   # a stray big frame's copies, freed by now, back to the OS

    def _judge(self, cam: Camera, msg: bytes, received_at: float, received_ns: int,
               ros_now_ns: int) -> None:
        where = f' ({cam.name})' if cam.name else ''
        try:
            frame = self._read(msg)
            image = self._decode(frame)
        except FrameError as exc:
            cam.core.frame_rejected(str(exc))
            self.get_logger().warning(f'rejected frame{where}: {exc}', throttle_duration_sec=2.0)
            return
        not_judged = cam.core.admit(frame.stamp_ns, ros_now_ns, frame.content())
        if not_judged is not None:
            self.get_logger().warning(f'frame not judged{where}: {not_judged}',
                                      throttle_duration_sec=2.0)
            return
        verdict = cam.core.judge(image, received_at)
        self._publish_verdict(cam, frame, verdict, received_at, received_ns)
        if self.pub_overlay is not None:
            self._publish_overlay(_header(frame), image, verdict)

    def _decode(self, frame):
        if frame.fmt is not None:
            return decode_compressed(frame.fmt, frame.data,
                                     self.bundle.preprocessing.min_decode_size)
        return decode_raw(frame.encoding, frame.height, frame.width, frame.step,
                          frame.is_bigendian, frame.data)

    # -- output -------------------------------------------------------------------------------
    def _publish_safe(self, is_safe: bool) -> None:
        """Every camera's flag and the combined one (the same topic with one camera)."""
        for cam in self.cameras:
            if cam.pub_safe is not self.pub_safe:
                cam.pub_safe.publish(Bool(data=bool(is_safe)))
        self.pub_safe.publish(Bool(data=bool(is_safe)))

    def _combined(self) -> tuple:
        return multi.combine({c.name: c.core.state() for c in self.cameras})

    def _publish_verdict(self, cam: Camera, frame, v, received_at: float,
                         received_ns: int) -> None:
        cam.score_msg.data, cam.safe_msg.data = float(v.score), bool(v.is_safe)
        cam.pub_score.publish(cam.score_msg)
        cam.pub_safe.publish(cam.safe_msg)
        if cam.pub_safe is not self.pub_safe:
            self.pub_safe.publish(Bool(data=self._combined()[0]))
        node_ms = node_overhead_ms(received_at, v)
        heard = cam.pub_status.get_subscription_count()   # per-frame detail: only when heard
        header = _header(frame) if heard or self.pub_features is not None else None
        if heard:
            self._publish_status(cam, header, v, node_ms, received_ns)
        if self.pub_features is not None:
            fwd = self.bundle.forward
            # forward only frames that are ID on their own and while the state is safe
            if v.is_safe and not v.frame_ood and fwd['output'] in v.outputs:
                out = forwarded_tensor_message(header, v.outputs[fwd['output']],
                                               fwd.get('dtype', 'float32'))
                self.pub_features.publish(out)
                self.forwarded += 1
                self.bytes_forwarded += len(out.data)
            else:  # OOD (or not judged): the cloud never sees it
                self.withheld += 1

    def _publish_status(self, cam: Camera, header, v, node_ms: float,
                        received_ns: int) -> None:
        transport_ms = (received_ns - (header.stamp.sec * 1_000_000_000 +
                                       header.stamp.nanosec)) / 1e6
        st = DiagnosticStatus(level=_LEVEL[v.is_safe], name=f'{self.get_fully_qualified_name()}',
                              message=v.reason, hardware_id=self.bundle.name)
        st.values = [KeyValue(key=k, value=f'{val:.6g}' if isinstance(val, float) else str(val))
                     for k, val in (('score', v.score), ('p_value', v.p_value),
                                    ('threshold', v.threshold), ('frame_ood', v.frame_ood),
                                    ('fused', v.fused), ('is_safe', v.is_safe),
                                    ('latency_ms', v.latency_ms),
                                    ('inference_ms', v.inference_ms),
                                    ('deadline_missed', v.deadline_missed),
                                    ('node_ms', node_ms), ('transport_ms', transport_ms))]
        cam.pub_status.publish(DiagnosticArray(header=header, status=[st]))

    def _publish_overlay(self, header, image, v) -> None:
        self._scores.append(v.score)
        now = time.monotonic()
        if now < self._overlay_due or not self.pub_overlay.get_subscription_count():
            return
        self._overlay_due = now + 1.0 / self.values['overlay_rate']
        rgb = overlay.render(image, v.is_safe, v.score, v.threshold, v.reason, self._scores,
                             self.values['overlay_width'])
        out = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                    is_bigendian=0, step=rgb.shape[1] * 3)
        out.data = rgb.tobytes()
        self.pub_overlay.publish(out)

    def _heartbeat(self) -> None:
        alive, busy_since = self._worker.is_alive(), self._busy_since
        faults = [cam.core.watchdog(alive, busy_since) for cam in self.cameras]
        fault = next((f for f in faults if f), None)
        # one state per camera, so that the combined flag is the one its cameras' flags say
        states = {cam.name: cam.core.state() for cam in self.cameras}
        for cam in self.cameras:
            if cam.pub_safe is not self.pub_safe:
                cam.pub_safe.publish(Bool(data=bool(states[cam.name][0])))
        self.pub_safe.publish(Bool(data=bool(multi.combine(states)[0])))
        if fault:
            self.get_logger().error(fault, throttle_duration_sec=2.0)
            if self.values['watchdog_exit']:
                raise NodeExit(WATCHDOG_EXIT_STATUS, f'{fault}: exiting (watchdog_exit)')

    def _publish_diagnostics(self) -> None:
        statuses = []
        for cam in self.cameras:
            publishers = self.count_publishers(cam.sub.topic_name)
            d = cam.core.diagnostics(publishers=publishers)
            kv = {'model': self.bundle.name, 'model_path': str(self.bundle.path),
                  'detector_family': self.bundle.family, 'provider': self.detector.provider,
                  'gpu_fallback': self.detector.fell_back, **d}
            # who hears the per-frame status (built only then): a tool that must not miss a
            # verdict waits until this counts it (the publisher's side of the match)
            kv['status_subscribers'] = cam.pub_status.get_subscription_count()
            kv['image_publishers'] = publishers
            if cam.name:
                kv['camera'], kv['topic'] = cam.name, cam.sub.topic_name
            if self.pub_features is not None:
                kv.update(collaborative_accounting(self.bundle, self.forwarded, self.withheld,
                                                   self.bytes_forwarded))
            statuses.append(DiagnosticStatus(
                level=_SEVERITY[d['severity']],
                name=f'{self.get_name()}: OOD monitor' + (f' ({cam.name})' if cam.name else ''),
                message=d['reason'], hardware_id=self.bundle.name,
                values=[KeyValue(key=k, value=f'{v:.4g}' if isinstance(v, float) else str(v))
                        for k, v in kv.items()]))
        if len(self.cameras) > 1:   # first: the verdict the controller acts on
            is_safe, reason = self._combined()
            statuses.insert(0, DiagnosticStatus(
                level=max(s.level for s in statuses), name=f'{self.get_name()}: OOD monitor',
                message=reason, hardware_id=self.bundle.name,
                values=[KeyValue(key='is_safe', value=str(is_safe)),
                        KeyValue(key='cameras', value=','.join(c.name for c in self.cameras))]))
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


class OodMonitorNode(MonitorShell, Node):
    """The plain node: configured and active from construction to `close()`."""

    def __init__(self, **kwargs):
        Node.__init__(self, 'ood_monitor', **kwargs)
        self._init_shell()
        self._configure()
        self._activate()

    def close(self) -> None:
        self._deactivate()


def main(args=None) -> int:
    return run_node('ood_monitor', OodMonitorNode, (BundleError, BackendError, StartupError),
                    args=args)


if __name__ == '__main__':
    sys.exit(main())
