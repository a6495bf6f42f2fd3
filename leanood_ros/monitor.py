"""The monitor's pure-Python core: frame -> detector score -> decision -> verdict, failing safe.

The ROS node is a thin shell around `MonitorCore`: it feeds frames, asks for the current state
on a heartbeat, and publishes what it is told.  Everything that decides safety lives here and is
unit-tested without a ROS graph.

Fail-safe rules: unsafe until the first frame has been judged; unsafe ("stale input") when no
valid frame arrived for `input_timeout` seconds; unsafe when the detector raises or anything else
in the judging path fails ("internal error"); unsafe when a frame's stamp is too old, in the
future or goes backwards; unsafe ("frozen camera") after `frozen_frames` identical frames;
unsafe while the watchdog finds the judging thread dead or stuck; optionally unsafe when a frame
misses its deadline.  Repeated frames and frames with bad stamps never count as fresh input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math
import threading
import time

from .decision import Decision, DecisionEngine
from .detectors import Detector
from .image_conversion import DecodedImage, shorten
from .stats import LatencyWindow, RateMeter, SequenceGaps

WAITING = 'waiting for the first frame'


@dataclass
class MonitorSettings:
    input_timeout: float = 1.0        # s without a valid frame -> unsafe
    deadline_ms: float = 100.0        # receipt -> verdict; 0 disables
    deadline_miss_unsafe: bool = False
    max_stamp_age: float = 1.0        # s between a frame's stamp and the ROS clock; 0 disables
    frozen_frames: int = 5            # identical frames (data or stamp) -> unsafe; 0 disables
    watchdog_timeout: float = 2.0     # s in one frame before the watchdog calls the worker stuck

    def validate(self) -> list:
        p = []
        if not 0.01 <= self.input_timeout <= 3600:
            p.append(f'input_timeout must be in [0.01, 3600] s, got {self.input_timeout}')
        if not 0 <= self.deadline_ms <= 60000:
            p.append(f'deadline_ms must be in [0, 60000], got {self.deadline_ms}')
        if not 0 <= self.max_stamp_age <= 1e6:
            p.append(f'max_stamp_age must be in [0, 1e6] s, got {self.max_stamp_age}')
        if self.frozen_frames == 1 or not 0 <= self.frozen_frames <= 100000:
            p.append(f'frozen_frames must be 0 (off) or in [2, 100000], got {self.frozen_frames}')
        if not 0.1 <= self.watchdog_timeout <= 3600:
            p.append(f'watchdog_timeout must be in [0.1, 3600] s, got {self.watchdog_timeout}')
        return p


@dataclass
class Verdict:
    is_safe: bool
    reason: str
    score: float = math.nan
    p_value: float = math.nan
    threshold: float = math.nan
    frame_ood: bool = False
    fused: float = math.nan
    latency_ms: float = math.nan       # frame receipt -> verdict
    preprocess_ms: float = math.nan
    inference_ms: float = math.nan
    deadline_missed: bool = False
    outputs: dict = field(default_factory=dict, repr=False)
    judged: bool = False               # came from the decision (not from a fault or an error)


@dataclass
class Counters:
    received: int = 0
    judged: int = 0
    skipped: int = 0
    rejected: int = 0
    detector_errors: int = 0
    internal_errors: int = 0
    bad_stamps: int = 0
    repeated: int = 0
    deadline_misses: int = 0
    watchdog_trips: int = 0


class MonitorCore:
    def __init__(self, detector: Detector, decision: DecisionEngine,
                 settings: MonitorSettings | None = None, clock=time.monotonic):
        self.detector = detector
        self.decision = decision
        self.settings = settings or MonitorSettings()
        problems = self.settings.validate()
        if problems:
            raise ValueError('; '.join(problems))
        self.clock = clock
        self.counters = Counters()
        self.input_rate = RateMeter()
        self.judged_rate = RateMeter()
        self.gaps = SequenceGaps()       # frames published that never reached the node
        self.latency = LatencyWindow()
        self.inference = LatencyWindow()
        self._lock = threading.Lock()
        self._last_valid = None          # clock time of the last decodable frame
        self._verdict: Verdict | None = None
        self._fault = ''                 # set by the watchdog while the judging thread is broken
        self._last_stamp = None          # ns, and content of the previous frame (frozen check)
        self._last_content = None
        self._repeats = 0
        self._input_fault = ''           # why the newest frame was not judged (stamp, frozen)
        self.last_rejection = ''

    # -- inputs -------------------------------------------------------------------------------
    def frame_received(self, now: float | None = None, publisher=None,
                       sequence: int | None = None) -> None:
        """Count a frame that reached the node.

        `publisher` and its publication `sequence` number, where rclpy gives them (Iron and
        later), also count the frames lost before it (`frames_lost`).
        """
        now = self.clock() if now is None else now
        with self._lock:
            self.counters.received += 1
            self.input_rate.tick(now)
            self.gaps.add(publisher, sequence)

    def frame_skipped(self, count: int = 1) -> None:
        with self._lock:
            self.counters.skipped += count

    def frame_rejected(self, reason: str) -> None:
        with self._lock:
            self.counters.rejected += 1
            self.last_rejection = reason

    def admit(self, stamp_ns: int, ros_now_ns: int, content) -> str | None:
        """Return None if a frame with this header stamp and content is to be judged.

        `content` is compared with the previous frame's by `==` (the node passes
        `serialized_image.FrameContent`: exact, and it stops at the first differing byte).

        Else return why not.  A frozen camera and bad stamps also turn the verdict unsafe; a
        repeat below `frozen_frames` is only skipped.  Stamps are judged against the ROS clock
        (`ros_now_ns`, sim time when the node uses it).
        """
        s = self.settings
        with self._lock:
            prev_stamp, prev_content = self._last_stamp, self._last_content
            self._last_stamp, self._last_content = stamp_ns, content
            same = None if prev_stamp is None else (
                'data' if content == prev_content else 'stamp' if stamp_ns == prev_stamp else None)
            if s.frozen_frames and same is not None:
                self._repeats += 1
                self.counters.repeated += 1
                if self._repeats + 1 < s.frozen_frames:
                    return f'repeated frame (same {same} as the previous one)'
                return self._input_failed(f'frozen camera: {self._repeats + 1} frames in a row '
                                          f'with the same {same}')
            self._repeats = 0
            age = (ros_now_ns - stamp_ns) / 1e9
            if s.max_stamp_age > 0 and abs(age) > s.max_stamp_age:
                fault = (f'stamp too old: {age:.3g} s behind' if age > 0 else
                         f'stamp in the future: {-age:.3g} s ahead of') + \
                    f' the ROS clock (max_stamp_age {s.max_stamp_age:g} s)'
            elif prev_stamp is not None and stamp_ns < prev_stamp:
                fault = f'stamp went backwards by {(prev_stamp - stamp_ns) / 1e9:.3g} s'
            else:
                self._input_fault = ''
                return None
            return self._input_failed(fault, stamp=True)

    def _input_failed(self, fault: str, stamp: bool = False) -> str:
        if stamp:
            self.counters.bad_stamps += 1
        self._verdict = Verdict(False, fault)
        self._input_fault = fault
        return fault

    def internal_error(self, what: str) -> None:
        """Record that something in the judging path failed (not the detector).

        Unsafe until the next verdict, counted.
        """
        with self._lock:
            self.counters.internal_errors += 1
            self._verdict = Verdict(False, f'internal error: {shorten(what, 200)[1:-1]}')

    def watchdog(self, alive: bool, busy_since: float | None, now: float | None = None):
        """Check the judging thread.

        Unsafe (and the reason returned) while it is dead or has been in one frame for longer
        than `watchdog_timeout`.
        """
        now = self.clock() if now is None else now
        limit = self.settings.watchdog_timeout
        if not alive:
            fault = 'watchdog: the judging thread died'
        elif busy_since is not None and now - busy_since > limit:
            fault = (f'watchdog: judging one frame for {now - busy_since:.1f} s '
                     f'(watchdog_timeout {limit:g} s)')
        else:
            fault = ''
        with self._lock:
            if fault and not self._fault:
                self.counters.watchdog_trips += 1
            self._fault = fault
        return fault or None

    def judge(self, image: DecodedImage, received_at: float) -> Verdict:
        """Score one valid frame and decide; never raises for detector failures."""
        with self._lock:
            self._last_valid = received_at
        try:
            inf = self.detector.infer(image)
        except Exception as exc:  # a safety monitor reports, it does not crash
            with self._lock:
                self.counters.detector_errors += 1
                self._verdict = Verdict(False, f'detector error: {type(exc).__name__}: '
                                               f'{shorten(exc, 200)[1:-1]}')
                return self._verdict
        with self._lock:
            d: Decision = self.decision.update(inf.score)
            now = self.clock()
            latency = (now - received_at) * 1e3
            v = Verdict(d.is_safe, d.reason, d.score, d.p_value, d.threshold, d.frame_ood,
                        d.fused, latency, inf.preprocess_ms, inf.inference_ms, False, inf.outputs,
                        judged=True)
            s = self.settings
            if s.deadline_ms > 0 and latency > s.deadline_ms:
                v.deadline_missed = True
                self.counters.deadline_misses += 1
                if s.deadline_miss_unsafe:
                    v.is_safe = False
                    v.reason = (f'deadline miss ({latency:.1f} ms > {s.deadline_ms:g} ms); '
                                f'{v.reason}')
            self.counters.judged += 1
            self.judged_rate.tick(now)
            self.latency.add(latency)
            self.inference.add(inf.inference_ms)
            self._verdict = v
            return v

    # -- state --------------------------------------------------------------------------------
    def state(self, now: float | None = None) -> tuple:
        """(is_safe, reason) right now, applying the stale-input rule."""
        return self._state(self.clock() if now is None else now)[:2]

    def _state(self, now: float) -> tuple:
        """Return (is_safe, reason, severity).

        Severity 'ok'; 'warn' when the detector judged the camera out of distribution (or
        recovering); 'error' when the monitor cannot judge.
        """
        with self._lock:
            if self._fault:
                return False, self._fault, 'error'
            if self._last_valid is None:
                if self._verdict is not None:   # an input fault or error before any valid frame
                    return False, self._verdict.reason, 'error'
                extra = f' ({self.counters.rejected} malformed frames rejected: ' \
                        f'{self.last_rejection})' if self.counters.rejected else ''
                return False, WAITING + extra, 'error'
            age = now - self._last_valid
            if age > self.settings.input_timeout:
                fault = f'; {self._input_fault}' if self._input_fault else ''
                return False, (f'stale input: no valid frame for {age:.2f} s (input_timeout '
                               f'{self.settings.input_timeout:g} s){fault}'), 'error'
            if self._verdict is None:
                return False, WAITING, 'error'
            v = self._verdict
            return v.is_safe, v.reason, ('ok' if v.is_safe else 'warn' if v.judged else 'error')

    def _lost(self, publishers: int | None):
        g = self.gaps
        if not g.counting:
            return ('unknown (no frame yet)' if not self.counters.received else
                    'unknown (no publication sequence numbers reach the node)')
        if not g.named and publishers is not None and publishers > 1:
            return f'unknown ({publishers} publishers, and this rclpy does not tell them apart)'
        return g.lost

    def diagnostics(self, now: float | None = None, publishers: int | None = None) -> dict:
        """Return the state, counters and latencies; `publishers`: how many publish the topic."""
        now = self.clock() if now is None else now
        is_safe, reason, severity = self._state(now)
        with self._lock:
            c = self.counters
            return {
                'is_safe': is_safe, 'reason': reason, 'severity': severity,
                'input_rate_hz': self.input_rate.rate(now),
                'judged_rate_hz': self.judged_rate.rate(now),
                'frames_received': c.received, 'frames_judged': c.judged,
                'frames_skipped': c.skipped, 'frames_lost': self._lost(publishers),
                'frames_rejected': c.rejected,
                'detector_errors': c.detector_errors, 'internal_errors': c.internal_errors,
                'bad_stamps': c.bad_stamps, 'frames_repeated': c.repeated,
                'deadline_misses': c.deadline_misses, 'watchdog_trips': c.watchdog_trips,
                'latency_p50_ms': self.latency.percentile(50),
                'latency_p99_ms': self.latency.percentile(99),
                'inference_p50_ms': self.inference.percentile(50),
                'last_rejection': self.last_rejection,
            }


def collaborative_accounting(bundle, forwarded: int, withheld: int, bytes_forwarded: int) -> dict:
    """Return EARLIN's cost argument.

    What withholding OOD frames saves against forwarding every frame.
    """
    fwd = bundle.forward or {}
    per_frame = int(fwd.get('bytes', 0))  # per forwarded frame, in the forwarded dtype
    cloud = int(bundle.manifest.get('flops', {}).get('cloud_macs', 0))
    total = forwarded + withheld
    return {'frames_forwarded': forwarded, 'frames_withheld': withheld,
            'bytes_forwarded': bytes_forwarded,
            'bytes_if_all_forwarded': per_frame * total,
            'bytes_saved': per_frame * withheld,
            'cloud_macs_saved': cloud * withheld,
            'withheld_fraction': (withheld / total) if total else 0.0}
