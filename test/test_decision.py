import math

import numpy as np
import pytest

from leanood_ros.decision import (ConformalPValues, DecisionConfig, DecisionEngine,
                                  mixture_betting)

CAL = np.random.default_rng(0).normal(size=999)


def test_p_values_are_conformal_ranks():
    pv = ConformalPValues([1.0, 2.0, 3.0, 4.0])
    assert pv(10.0) == pytest.approx(1 / 5)
    assert pv(3.0) == pytest.approx(3 / 5)     # ties count as at-or-above
    assert pv(-1.0) == pytest.approx(1.0)
    assert pv.min_alpha == pytest.approx(0.2)


def test_p_values_of_id_scores_are_uniform():
    pv = ConformalPValues(CAL)
    ps = np.array([pv(s) for s in np.random.default_rng(1).normal(size=20000)])
    for a in (0.01, 0.05, 0.2):
        assert abs((ps <= a).mean() - a) < 0.25 * a + 0.003


@pytest.mark.parametrize('alpha', [0.001, 0.01, 0.1])
def test_threshold_matches_p_value_rule(alpha):
    pv = ConformalPValues(CAL)
    thr = pv.threshold(alpha)
    assert pv(np.nextafter(thr, np.inf)) <= alpha < pv(thr)
    assert ConformalPValues([1.0] * 10).threshold(0.01) == math.inf  # below 1/(n+1)


def test_exponential_tail_changes_nothing_inside_the_calibration_range():
    pv = ConformalPValues(CAL)
    inside = np.r_[np.linspace(CAL.min() - 1, CAL.max(), 2001), CAL]
    assert all(pv(s, 'exponential') == pv(s) for s in inside)


def test_exponential_tail_falls_on_beyond_the_largest_calibration_score():
    pv = ConformalPValues(CAL)
    top, n = CAL.max(), CAL.size
    beyond = top + np.array([1e-9, 0.1, 1.0, 10.0, 1e3, 1e300])
    ps = [pv(s, 'exponential') for s in beyond]
    assert ps[0] == pytest.approx(1 / (n + 1))                 # continuous at the maximum
    assert all(a > b for a, b in zip(ps, ps[1:-1]))            # strictly falling ...
    assert ps[-1] == pytest.approx(1e-100) and math.isfinite(math.log(mixture_betting(ps[-1])))
    assert all(pv(s) == pytest.approx(1 / (n + 1)) for s in beyond)   # conformal: flat
    # the scale is the mean excess of the top 5 % over the next score (an exponential fit)
    k = math.ceil(0.05 * n)
    cal = np.sort(CAL)
    assert pv.tail_scale == pytest.approx(np.mean(cal[-k:] - cal[-k - 1]))
    assert ps[2] == pytest.approx(math.exp(-1.0 / pv.tail_scale) / (n + 1))


def test_exponential_tail_survives_degenerate_calibration_sets():
    for cal in ([1.0], [2.0] * 50, [0.0, 1.0]):
        pv = ConformalPValues(cal)
        assert pv(max(cal) + 1.0, 'exponential') > 0
        assert pv(max(cal), 'exponential') == pv(max(cal))


def test_exponential_tail_catches_a_clear_shift_at_once():
    """One frame far past the calibration range alarms; with the conformal floor it cannot."""
    cfg = DecisionConfig(fusion='cusum', cusum_window=1, cusum_drift=0.5, cusum_threshold=12.0,
                         recovery_frames=0)
    far = CAL.max() * 3 + 10
    assert not DecisionEngine(CAL, cfg.replace(p_tail='exponential')).update(far).is_safe
    assert DecisionEngine(CAL, cfg).update(far).is_safe
    # ... while an ID stream is exactly as quiet as before (same p-values inside the range)
    ids = np.random.default_rng(7).normal(size=5000).clip(max=CAL.max())
    a = run(DecisionEngine(CAL, cfg.replace(p_tail='exponential')), ids)
    b = run(DecisionEngine(CAL, cfg), ids)
    assert [d.is_safe for d in a] == [d.is_safe for d in b]


@pytest.mark.parametrize('p', [1e-6, 0.001, 0.3, 0.999999, 1.0])
def test_mixture_betting_closed_form(p):
    eps = np.linspace(0, 1, 100001)
    numeric = np.trapezoid(eps * p ** (eps - 1), eps)   # integral_0^1 e p^(e-1) de
    assert mixture_betting(p) == pytest.approx(numeric, rel=1e-4)


def test_mixture_betting_bets_on_small_p_values():
    assert mixture_betting(1.0) == pytest.approx(0.5)
    assert mixture_betting(0.001) > 10


def run(engine, scores):
    return [engine.update(float(s)) for s in scores]


@pytest.mark.parametrize('fusion', ['none', 'vote', 'cusum'])
def test_id_stream_stays_quiet_at_the_expected_rate(fusion):
    eng = DecisionEngine(CAL, DecisionConfig(fusion=fusion, alpha=0.01, recovery_frames=0))
    out = run(eng, np.random.default_rng(2).normal(size=20000))
    frame_rate = np.mean([d.frame_ood for d in out])
    assert frame_rate == pytest.approx(0.01, abs=0.004)     # per-frame test at alpha
    alarm_rate = np.mean([d.alarm for d in out])
    limit = {'none': 0.015, 'vote': 0.001, 'cusum': 0.002}[fusion]
    assert alarm_rate <= limit, alarm_rate


@pytest.mark.parametrize('fusion,max_delay', [('none', 0), ('vote', 2), ('cusum', 3)])
@pytest.mark.parametrize('shift', [6.0, 10.0])
def test_shift_is_caught_within_bounded_delay(fusion, max_delay, shift):
    rng = np.random.default_rng(3)
    delays = []
    for _ in range(30):
        eng = DecisionEngine(CAL, DecisionConfig(fusion=fusion))
        run(eng, rng.normal(size=100))
        out = run(eng, rng.normal(loc=shift, size=30))
        delays.append(next(i for i, d in enumerate(out) if not d.is_safe))
    assert max(delays) <= max_delay, delays


def test_hysteresis_needs_recovery_frames():
    eng = DecisionEngine(CAL, DecisionConfig(fusion='none', recovery_frames=5))
    assert not eng.update(10.0).is_safe
    out = run(eng, [-1.0] * 6)
    assert [d.is_safe for d in out] == [False] * 4 + [True, True]
    assert 'recovering (1/5' in out[0].reason and out[4].reason == 'in distribution (recovered)'


def test_cusum_recovery_time_is_bounded_after_a_long_shift():
    eng = DecisionEngine(CAL, DecisionConfig(fusion='cusum', recovery_frames=5))
    run(eng, [10.0] * 1000)
    out = run(eng, [-1.0] * 60)
    assert out[-1].is_safe
    assert next(i for i, d in enumerate(out) if d.is_safe) < 40


def test_score_threshold_overrides_alpha():
    eng = DecisionEngine(CAL, DecisionConfig(fusion='none', score_threshold=100.0))
    assert eng.update(50.0).is_safe and not eng.update(150.0).is_safe


@pytest.mark.parametrize('fusion', ['vote', 'cusum'])
def test_score_threshold_has_effect_with_temporal_fusion(fusion):
    """A shift that alpha flags goes unflagged below score_threshold and flagged above it."""
    rng = np.random.default_rng(5)
    shifted = rng.normal(loc=6.0, size=40)   # far above every calibration score
    plain = run(DecisionEngine(CAL, DecisionConfig(fusion=fusion)), shifted)
    assert not plain[-1].is_safe
    high = run(DecisionEngine(CAL, DecisionConfig(fusion=fusion, score_threshold=20.0)), shifted)
    assert all(d.is_safe for d in high)
    low = run(DecisionEngine(CAL, DecisionConfig(fusion=fusion, score_threshold=2.0)), shifted)
    assert not low[-1].is_safe


@pytest.mark.parametrize('bad', [{'alpha': 0.0}, {'alpha': 1.5}, {'fusion': 'maybe'},
                                 {'vote_k': 6, 'vote_n': 5}, {'cusum_window': 0},
                                 {'cusum_threshold': 0.0}, {'recovery_frames': -1},
                                 {'score_threshold': -1.0}, {'p_tail': 'pareto'}])
def test_invalid_configs_are_rejected_and_old_kept(bad):
    eng = DecisionEngine(CAL)
    before = eng.config
    with pytest.raises(ValueError):
        eng.reconfigure(before.replace(**bad))
    assert eng.config is before
    with pytest.raises(ValueError):
        DecisionEngine(CAL, DecisionConfig().replace(**bad))


def test_live_reconfigure_keeps_alarm_state():
    eng = DecisionEngine(CAL, DecisionConfig(fusion='none', recovery_frames=3))
    eng.update(10.0)
    eng.reconfigure(eng.config.replace(fusion='vote'))
    assert not eng.update(-1.0).is_safe  # still recovering after the switch
