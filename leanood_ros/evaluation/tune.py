"""Choose a bundle's recommended decision settings from in-distribution data only.

Candidates are CUSUM shapes (window, drift) and k-of-n votes at several per-frame alphas.  Each is
made quiet on held-out ID sequences with a safety margin:
- CUSUM: the alarm threshold is `margin` x the largest CUSUM statistic seen on those sequences;
- vote: the largest number of flagged frames in any n-frame window of those sequences must stay at
  least one below k.
Among the quiet candidates the one that reacts fastest wins: mean frames to the alarm for a clear
shift plus a tenth of those for a subtle one (`SUBTLE_WEIGHT`); both shifts are *synthetic*,
appended to each ID sequence: scores at twice the largest calibration score (clear) and at its 99th
percentile (subtle, what motion blur looks like to a VAE). No OOD data is used to tune anything.
Every candidate uses the exponential p-value tail (decision.py): it changes nothing inside the
calibration range.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..decision import ConformalPValues, DecisionConfig, DecisionEngine


def _run(scores, calibration, cfg):
    eng = DecisionEngine(calibration, cfg)
    return [eng.update(float(s)) for s in scores]


def _synthetic_delay(scores, calibration, cfg, level: float, prefix: int = 30) -> int:
    eng = DecisionEngine(calibration, cfg)
    for s in scores[:prefix]:
        eng.update(float(s))
    for k in range(200):
        if not eng.update(level).is_safe:
            return k
    return 200


def _synthetic_delays(sequences, calibration, cfg) -> tuple:
    """Mean frames to the alarm for a clear and for a subtle synthetic shift."""
    clear = float(np.max(calibration)) * 2 + 1.0
    subtle = float(np.quantile(calibration, 0.99))
    return tuple(float(np.mean([_synthetic_delay(s, calibration, cfg, level) for s in sequences]))
                 for level in (clear, subtle))


def _max_flagged_in_window(flags: np.ndarray, n: int) -> int:
    if len(flags) < n:
        return int(flags.sum())
    c = np.convolve(flags.astype(int), np.ones(n, int), mode='valid')
    return int(c.max())


MARGIN = 1.5       # over the peak CUSUM statistic of held-out ID sequences
LOO_MARGIN = 2.0   # ... of sequences each judged without itself (see tune_decision)
SUBTLE_WEIGHT = 0.1   # a frame of delay on a subtle shift counts a tenth of one on a clear shift


def tune_decision(calibration, id_sequences, margin: float | None = None,
                  min_threshold: float = 4.0,
                  windows=(1, 2, 4, 8), drifts=(0.0, 0.5, 1.0, 2.0),
                  votes=((2, 2), (2, 3), (3, 3), (3, 4), (3, 5)),
                  alphas=(0.001, 0.002, 0.005, 0.01), recovery_frames: int = 10,
                  alpha: float = 0.01, sequence_calibrations=None, p_tail: str = 'exponential',
                  subtle_weight: float = SUBTLE_WEIGHT) -> dict:
    """Tune on `id_sequences`, score arrays of held-out ID recordings (validation, a new map).

    `sequence_calibrations`, one calibration array per sequence, judges each sequence against
    the calibration scores *without its own* (leave one recording out): when the only normal
    sequences are the calibration recordings themselves, their in-sample p-values would make
    the threshold too tight for the next recording.  With so few recordings (adapt: 2 per
    place) the next one's peak may exceed the largest seen by more: the default margin is
    `LOO_MARGIN` then (chosen on the new-camera benchmark, benchmarks/adapt/README.md).
    """
    if margin is None:
        margin = LOO_MARGIN if sequence_calibrations else MARGIN
    cals = list(sequence_calibrations or [calibration] * len(id_sequences))
    pv = ConformalPValues(min(cals, key=len))
    candidates = []
    for window, drift in itertools.product(windows, drifts):
        probe = DecisionConfig(alpha=alpha, fusion='cusum', cusum_window=window, cusum_drift=drift,
                               cusum_threshold=1e4, recovery_frames=recovery_frames,
                               p_tail=p_tail)
        peak = max(max((d.fused for d in _run(s, cal, probe)), default=0.0)
                   for s, cal in zip(id_sequences, cals))
        cfg = probe.replace(cusum_threshold=float(max(min_threshold, margin * peak)))
        candidates.append((cfg, {'peak_id_cusum': round(peak, 3), 'margin': margin}))
    for (k, n), a in itertools.product(votes, alphas):
        if a < pv.min_alpha or k > n:
            continue
        worst = max(_max_flagged_in_window(np.asarray(s) > ConformalPValues(cal).threshold(a), n)
                    for s, cal in zip(id_sequences, cals))
        if worst <= k - 2:   # quiet with one frame to spare
            cfg = DecisionConfig(alpha=a, fusion='vote', vote_k=k, vote_n=n,
                                 recovery_frames=recovery_frames, p_tail=p_tail)
            candidates.append((cfg, {'max_flagged_in_any_window_on_id': worst}))
    best = None
    for cfg, info in candidates:
        clear, subtle = _synthetic_delays(id_sequences, calibration, cfg)
        # prefer faster; on ties the more conservative (cusum by threshold, vote by larger k)
        key = (clear + subtle_weight * subtle,
               -(cfg.cusum_threshold if cfg.fusion == 'cusum' else 0.0),
               -cfg.vote_k if cfg.fusion == 'vote' else 0)
        if best is None or key < best[0]:
            best = (key, cfg, info, clear, subtle)
    _, cfg, info, delay, subtle = best
    out = {k: getattr(cfg, k) for k in ('alpha', 'fusion', 'recovery_frames', 'p_tail')}
    if cfg.fusion == 'cusum':
        out.update(cusum_window=cfg.cusum_window, cusum_drift=cfg.cusum_drift,
                   cusum_threshold=round(cfg.cusum_threshold, 3))
    else:
        out.update(vote_k=cfg.vote_k, vote_n=cfg.vote_n)
    out['tuning'] = {'method': 'ID-only: quiet on held-out ID sequences with a margin; fastest '
                               f'reaction to a synthetic clear shift + {subtle_weight:g} x to a '
                               'subtle one'
                               + ('; each sequence against the calibration without itself'
                                  if sequence_calibrations else ''), **info,
                     'synthetic_delay_frames': delay, 'subtle_delay_frames': subtle,
                     'id_sequences': len(id_sequences),
                     'candidates': len(candidates)}
    return out


def tune_bundle(bundle, id_paths, detector=None, **kwargs) -> dict:
    """Set a bundle's recommended decision settings (in memory) from held-out ID recordings."""
    from ..detectors import build_detector
    from .frames import load_frames
    det = detector or build_detector(bundle, threads=2)
    seqs = [det.predict_resized(load_frames([p], bundle.preprocessing, progress=False).images)
            for p in id_paths]
    bundle.manifest['decision'] = tune_decision(bundle.calibration_scores, seqs, **kwargs)
    return bundle.manifest['decision']


def retune(bundle_dir, id_paths, **kwargs) -> dict:
    """Re-derive a saved bundle's decision settings and rewrite it in place."""
    from ..bundle import load_bundle, save_bundle
    bundle = load_bundle(bundle_dir)
    decision = tune_bundle(bundle, id_paths, **kwargs)
    save_bundle(bundle)
    return decision


def main(argv=None) -> int:
    """`leanood tune`: recommended decision settings of a bundle, from ID recordings only."""
    import argparse
    import json
    from .recording_sets import add_recording_args, recording_sets, require
    ap = argparse.ArgumentParser(prog='leanood tune', description=main.__doc__)
    ap.add_argument('--model', required=True)
    add_recording_args(ap, roles=('id',))
    ap.add_argument('--margin', type=float, default=MARGIN,
                    help='CUSUM threshold = margin x the peak statistic on the ID recordings')
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap, split='val')   # --dataset: the validation split's ID
    require(ap, sets, 'id', why='(held-out ID sequences to stay quiet on)')
    print(json.dumps(retune(a.model, sets['id'], margin=a.margin), indent=1))
    return 0
