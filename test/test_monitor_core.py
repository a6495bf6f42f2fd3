import numpy as np
import pytest

from leanood_ros.decision import DecisionConfig, DecisionEngine
from leanood_ros.detectors import Detector, Inference
from leanood_ros.image_conversion import from_array
from leanood_ros.monitor import MonitorCore, MonitorSettings

FRAME = from_array(np.zeros((4, 4, 3), np.uint8))


class ScriptedDetector(Detector):
    """Returns queued scores; an Exception in the queue is raised (a detector failure)."""

    def __init__(self, scores, clock=None, cost=0.0):
        self.scores, self.clock, self.cost = list(scores), clock, cost

    def infer(self, image):
        s = self.scores.pop(0)
        if self.clock is not None:
            self.clock.t += self.cost
        if isinstance(s, Exception):
            raise s
        return Inference(s, {}, 0.1, 0.2)


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def make(scores, clock, **settings):
    det = ScriptedDetector(scores, clock, settings.pop('cost', 0.0))
    eng = DecisionEngine(np.linspace(0, 1, 100), DecisionConfig(fusion='none', recovery_frames=0))
    return MonitorCore(det, eng, MonitorSettings(**settings), clock=clock)


def test_unsafe_until_first_frame_judged():
    clock = Clock()
    core = make([0.5], clock)
    assert core.state() == (False, 'waiting for the first frame')
    core.frame_rejected('truncated data')
    assert 'truncated data' in core.state()[1] and not core.state()[0]
    core.frame_received()
    v = core.judge(FRAME, clock())
    assert v.is_safe and core.state()[0]


def test_stale_input_after_timeout():
    clock = Clock()
    core = make([0.5], clock, input_timeout=0.5)
    core.judge(FRAME, clock())
    clock.t += 0.49
    assert core.state()[0]
    clock.t += 0.02
    safe, reason = core.state()
    assert not safe and reason.startswith('stale input')


def test_rejected_frames_do_not_keep_the_input_fresh():
    clock = Clock()
    core = make([0.5], clock, input_timeout=0.5)
    core.judge(FRAME, clock())
    for _ in range(10):
        clock.t += 0.1
        core.frame_received()
        core.frame_rejected('bad')
    assert not core.state()[0]
    assert core.diagnostics()['frames_rejected'] == 10


def test_detector_error_is_unsafe_with_reason_and_counted():
    clock = Clock()
    core = make([0.5, RuntimeError('graph exploded'), 0.5], clock)
    assert core.judge(FRAME, clock()).is_safe
    v = core.judge(FRAME, clock())
    assert not v.is_safe and 'graph exploded' in v.reason
    assert core.state() == (False, v.reason)
    assert core.judge(FRAME, clock()).is_safe
    assert core.diagnostics()['detector_errors'] == 1


@pytest.mark.parametrize('unsafe', [False, True])
def test_deadline_misses_are_counted_and_optionally_unsafe(unsafe):
    clock = Clock()
    core = make([0.5, 0.5], clock, deadline_ms=50, deadline_miss_unsafe=unsafe, cost=0.08)
    v = core.judge(FRAME, clock())
    assert v.deadline_missed and v.latency_ms == pytest.approx(80)
    assert v.is_safe is (not unsafe)
    assert core.diagnostics()['deadline_misses'] == 1


def test_invalid_settings_rejected():
    with pytest.raises(ValueError, match='input_timeout'):
        make([], Clock(), input_timeout=0.0)


NS = 1_000_000_000


def test_bad_stamps_are_unsafe_and_not_fresh_input():
    clock = Clock()
    core = make([0.5] * 5, clock, max_stamp_age=0.5)
    now = 1000 * NS
    assert core.admit(now - NS // 10, now, 1) is None
    core.judge(FRAME, clock())
    assert core.state()[0]
    for stamp, words in ((now - 2 * NS, 'stamp too old'), (0, 'stamp too old'),
                         (now + 2 * NS, 'stamp in the future'),
                         (now - NS // 5, 'went backwards')):
        reason = core.admit(stamp, now, stamp)
        assert words in reason
        assert core.state() == (False, reason)
    assert core.admit(now, now, 'fresh') is None   # a good frame is judged again
    core.judge(FRAME, clock())
    assert core.state()[0] and core.diagnostics()['bad_stamps'] == 4


def test_max_stamp_age_zero_disables_the_age_check():
    core = make([], Clock(), max_stamp_age=0.0)
    assert core.admit(0, 1000 * NS, 1) is None


@pytest.mark.parametrize('same', ['data', 'stamp'])
def test_frozen_camera(same):
    clock = Clock()
    core = make([0.5] * 3, clock, frozen_frames=4)
    now = 1000 * NS
    assert core.admit(now, now, 'a') is None
    core.judge(FRAME, clock())
    reasons, states = [], []
    for i in range(1, 5):   # the same data with fresh stamps, or the same stamp with new data
        stamp, digest = (now + i, 'a') if same == 'data' else (now, f'b{i}')
        reasons.append(core.admit(stamp, now, digest))
        states.append(core.state()[0])
    assert [r.startswith('repeated frame') for r in reasons[:2]] == [True, True]
    assert states == [True, True, False, False]   # repeats below frozen_frames are only skipped
    assert reasons[2] == f'frozen camera: 4 frames in a row with the same {same}'
    assert core.state() == (False, reasons[3]) and reasons[3].startswith('frozen camera: 5')
    assert core.admit(now + 10, now, 'new') is None
    assert core.judge(FRAME, clock()).is_safe


def test_repeats_do_not_keep_the_input_fresh():
    clock = Clock()
    core = make([0.5], clock, input_timeout=0.5, frozen_frames=100)
    core.admit(0, 0, 'a')
    core.judge(FRAME, clock())
    for _ in range(6):
        clock.t += 0.1
        assert core.admit(0, 0, 'a').startswith('repeated')
    assert core.state()[1].startswith('stale input')


def test_internal_error_is_unsafe_counted_and_recovers():
    clock = Clock()
    core = make([0.5, 0.5], clock)
    core.judge(FRAME, clock())
    core.internal_error('error: (-215) imdecode ' + 'x' * 1000)
    safe, reason = core.state()
    assert not safe and reason.startswith('internal error: error: (-215)') and len(reason) < 260
    assert core.diagnostics()['internal_errors'] == 1
    assert core.judge(FRAME, clock()).is_safe


def test_watchdog_dead_or_stuck_worker():
    clock = Clock()
    core = make([0.5], clock, watchdog_timeout=1.0)
    core.judge(FRAME, clock())
    assert core.watchdog(True, clock.t - 0.5) is None and core.state()[0]
    stuck = core.watchdog(True, clock.t - 1.5)
    assert stuck.startswith('watchdog: judging one frame for 1.5 s')
    assert core.state() == (False, stuck) and core.diagnostics()['severity'] == 'error'
    assert core.watchdog(True, None) is None and core.state()[0]   # it finished the frame
    assert core.watchdog(False, None) == 'watchdog: the judging thread died'
    assert core.state() == (False, 'watchdog: the judging thread died')
    assert core.diagnostics()['watchdog_trips'] == 2


@pytest.mark.parametrize('bad', [{'frozen_frames': 1}, {'frozen_frames': -1},
                                 {'max_stamp_age': -1.0}, {'watchdog_timeout': 0.0}])
def test_invalid_fail_safe_settings_rejected(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make([], Clock(), **bad)


def test_severity_tells_out_of_distribution_from_cannot_judge():
    clock = Clock()
    core = make([0.5, 5.0, RuntimeError('boom')], clock)
    assert core.diagnostics()['severity'] == 'error'           # waiting for the first frame
    core.judge(FRAME, clock())
    assert core.diagnostics()['severity'] == 'ok'
    core.judge(FRAME, clock())                                 # far above the calibration
    assert core.diagnostics()['severity'] == 'warn'
    core.judge(FRAME, clock())
    assert core.diagnostics()['severity'] == 'error'           # the detector failed


def test_frames_lost_before_the_node_from_publication_sequence_numbers():
    core = make([], Clock())
    assert core.diagnostics()['frames_lost'] == 'unknown (no frame yet)'
    core.frame_received()   # rclpy before Iron: no sequence number
    assert core.diagnostics()['frames_lost'].startswith('unknown (no publication sequence')
    core = make([], Clock())
    for seq in (7, 8, 11, 12, 20):   # the first one starts the count: 2 + 7 lost after it
        core.frame_received(publisher=b'cam', sequence=seq)
    core.frame_received(publisher=b'other', sequence=1)
    core.frame_received(publisher=b'other', sequence=3)
    core.frame_received(publisher=b'cam', sequence=2)     # restarted: counts afresh
    core.frame_received(publisher=b'cam', sequence=4)
    d = core.diagnostics(publishers=2)
    assert d['frames_lost'] == 2 + 7 + 1 + 1 and d['frames_received'] == 9


def test_frames_lost_is_unknown_while_unnamed_publishers_interleave():
    core = make([], Clock())
    for seq in (5, 1, 6, 2, 7, 3):   # two publishers, no GIDs (Jazzy's rclpy): false gaps
        core.frame_received(sequence=seq)
    assert core.diagnostics(publishers=2)['frames_lost'].startswith('unknown (2 publishers')
    core = make([], Clock())
    for seq in (5, 6, 8):
        core.frame_received(sequence=seq)
    assert core.diagnostics(publishers=1)['frames_lost'] == 1   # one unnamed publisher: exact
