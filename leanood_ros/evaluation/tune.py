"""Choose a bundle's recommended decision settings from in-distribution data only.

For each candidate CUSUM shape (window, drift) the alarm threshold is set just above the largest
CUSUM statistic seen on held-out ID sequences (times a margin), so those sequences raise no alarm.
Among the candidates, the one that reacts fastest to a worst-case shift is kept - where the shift
is *synthetic* (scores above every calibration score appended to each ID sequence), so no OOD
data is used to tune anything.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..decision import DecisionConfig, DecisionEngine


def _max_cusum(scores, calibration, cfg) -> float:
    eng = DecisionEngine(calibration, cfg)
    return max((eng.update(float(s)).fused for s in scores), default=0.0)


def _synthetic_delay(scores, calibration, cfg, prefix: int = 30) -> int:
    eng = DecisionEngine(calibration, cfg)
    for s in scores[:prefix]:
        eng.update(float(s))
    worst = float(np.max(calibration)) * 2 + 1.0
    for k in range(200):
        if not eng.update(worst).is_safe:
            return k
    return 200


def tune_decision(calibration, id_sequences, margin: float = 1.5, min_threshold: float = 4.0,
                  windows=(1, 2, 4, 8), drifts=(0.0, 0.5, 1.0, 2.0), recovery_frames: int = 10,
                  alpha: float = 0.01) -> dict:
    """id_sequences: list of score arrays of held-out ID recordings (e.g. validation, new map)."""
    best = None
    for window, drift in itertools.product(windows, drifts):
        probe = DecisionConfig(alpha=alpha, fusion='cusum', cusum_window=window, cusum_drift=drift,
                               cusum_threshold=1e4, recovery_frames=recovery_frames)
        peak = max(_max_cusum(s, calibration, probe) for s in id_sequences)
        cfg = probe.replace(cusum_threshold=float(max(min_threshold, margin * peak)))
        delay = float(np.mean([_synthetic_delay(s, calibration, cfg) for s in id_sequences]))
        key = (delay, cfg.cusum_threshold)
        if best is None or key < best[0]:
            best = (key, cfg, peak)
    (delay, _), cfg, peak = best
    return {'alpha': cfg.alpha, 'fusion': 'cusum', 'cusum_window': cfg.cusum_window,
            'cusum_drift': cfg.cusum_drift, 'cusum_threshold': round(cfg.cusum_threshold, 3),
            'recovery_frames': recovery_frames,
            'tuning': {'method': 'ID-only: threshold = max(min_threshold, margin x peak CUSUM on '
                                 'held-out ID sequences); fastest reaction to a synthetic '
                                 'worst-case shift', 'peak_id_cusum': round(peak, 3),
                       'margin': margin, 'synthetic_delay_frames': delay,
                       'id_sequences': len(id_sequences)}}
