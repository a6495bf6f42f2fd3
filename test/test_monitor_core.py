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
