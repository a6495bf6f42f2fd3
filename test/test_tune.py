import inspect

import numpy as np

from leanood_ros.decision import DecisionConfig, DecisionEngine
from leanood_ros.evaluation.tune import tune_decision
from leanood_ros.parameters import DECISION_KEYS


def test_tuned_settings_are_quiet_on_id_and_fast_on_a_shift():
    rng = np.random.default_rng(0)
    cal = rng.normal(size=800)
    # held-out ID sequences with some autocorrelation (consecutive frames look alike)
    seqs = [np.convolve(rng.normal(size=300), np.ones(3) / np.sqrt(3), mode='same')
            for _ in range(4)]
    d = tune_decision(cal, seqs)
    cfg = DecisionConfig(**{k: d[k] for k in DECISION_KEYS if k in d})
    for s in seqs:
        eng = DecisionEngine(cal, cfg)
        assert all(eng.update(x).is_safe for x in s)
    eng = DecisionEngine(cal, cfg)
    for x in seqs[0][:50]:
        eng.update(x)
    delay = next(i for i in range(50) if not eng.update(10.0).is_safe)
    assert delay <= d['tuning']['synthetic_delay_frames'] <= 5


def test_tuning_takes_no_ood_data():
    params = list(inspect.signature(tune_decision).parameters)
    assert params[:2] == ['calibration', 'id_sequences']
    assert not any('ood' in p for p in params)


def test_leave_one_recording_out_is_no_tighter_than_in_sample():
    """Tuning on the calibration recordings themselves: each judged without its own scores."""
    import numpy as np
    from leanood_ros.evaluation.tune import tune_decision
    rng = np.random.default_rng(4)
    # recordings differ a little from each other, as drives of one place do
    parts = [rng.gamma(2.0, 1.0 + 0.15 * k, 120) for k in range(4)]
    cal = np.concatenate(parts)
    in_sample = tune_decision(cal, parts, windows=(2,), drifts=(0.5,), votes=())
    loo = tune_decision(cal, parts, windows=(2,), drifts=(0.5,), votes=(),
                        sequence_calibrations=[np.concatenate(parts[:i] + parts[i + 1:])
                                               for i in range(4)])
    assert loo['tuning']['peak_id_cusum'] >= in_sample['tuning']['peak_id_cusum']
    assert 'without itself' in loo['tuning']['method']


def test_tuning_chooses_the_exponential_tail_and_reports_both_synthetic_delays():
    rng = np.random.default_rng(1)
    cal = rng.normal(size=600)
    d = tune_decision(cal, [rng.normal(size=200) for _ in range(3)], votes=())
    assert d['p_tail'] == 'exponential'
    t = d['tuning']
    assert t['synthetic_delay_frames'] <= t['subtle_delay_frames']
    assert t['margin'] == 1.5


def test_leave_one_recording_out_defaults_to_the_wider_margin():
    from leanood_ros.evaluation.tune import LOO_MARGIN
    rng = np.random.default_rng(2)
    parts = [rng.normal(size=150) for _ in range(3)]
    d = tune_decision(np.concatenate(parts), parts, votes=(), sequence_calibrations=[
        np.concatenate(parts[:i] + parts[i + 1:]) for i in range(3)])
    assert d['tuning']['margin'] == LOO_MARGIN
    peak = d['tuning']['peak_id_cusum']
    assert abs(d['cusum_threshold'] - max(4.0, LOO_MARGIN * peak)) <= 2e-3
