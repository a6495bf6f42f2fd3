"""Choose a bundle's recommended decision settings from in-distribution data only.

Candidates are CUSUM shapes (window, drift) and k-of-n votes at several per-frame alphas.  Each is
made quiet on held-out ID sequences with a safety margin:
- CUSUM: the alarm threshold is `margin` x the largest CUSUM statistic seen on those sequences;
- vote: the largest number of flagged frames in any n-frame window of those sequences must stay at
  least one below k.
Among the quiet candidates the one that reacts fastest to a worst-case shift wins, where the shift
is *synthetic* (scores above every calibration score appended to each ID sequence): no OOD data is
used to tune anything.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..decision import ConformalPValues, DecisionConfig, DecisionEngine


def _run(scores, calibration, cfg):
    eng = DecisionEngine(calibration, cfg)
    return [eng.update(float(s)) for s in scores]


def _synthetic_delay(scores, calibration, cfg, prefix: int = 30) -> int:
    eng = DecisionEngine(calibration, cfg)
    for s in scores[:prefix]:
        eng.update(float(s))
    worst = float(np.max(calibration)) * 2 + 1.0
    for k in range(200):
        if not eng.update(worst).is_safe:
            return k
    return 200


def _max_flagged_in_window(flags: np.ndarray, n: int) -> int:
    if len(flags) < n:
        return int(flags.sum())
    c = np.convolve(flags.astype(int), np.ones(n, int), mode='valid')
    return int(c.max())


def tune_decision(calibration, id_sequences, margin: float = 1.5, min_threshold: float = 4.0,
                  windows=(1, 2, 4, 8), drifts=(0.0, 0.5, 1.0, 2.0),
                  votes=((2, 2), (2, 3), (3, 3), (3, 4), (3, 5)),
                  alphas=(0.001, 0.002, 0.005, 0.01), recovery_frames: int = 10,
                  alpha: float = 0.01, sequence_calibrations=None) -> dict:
    """Tune on `id_sequences`, score arrays of held-out ID recordings (validation, a new map).

    `sequence_calibrations`, one calibration array per sequence, judges each sequence against
    the calibration scores *without its own* (leave one recording out): when the only normal
    sequences are the calibration recordings themselves, their in-sample p-values would make
    the threshold too tight for the next recording.
    """
    cals = list(sequence_calibrations or [calibration] * len(id_sequences))
    pv = ConformalPValues(min(cals, key=len))
    candidates = []
    for window, drift in itertools.product(windows, drifts):
        probe = DecisionConfig(alpha=alpha, fusion='cusum', cusum_window=window, cusum_drift=drift,
                               cusum_threshold=1e4, recovery_frames=recovery_frames)
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
                                 recovery_frames=recovery_frames)
            candidates.append((cfg, {'max_flagged_in_any_window_on_id': worst}))
    best = None
    for cfg, info in candidates:
        delay = float(np.mean([_synthetic_delay(s, calibration, cfg) for s in id_sequences]))
        # prefer faster; on ties the more conservative (cusum by threshold, vote by larger k)
        key = (delay, -(cfg.cusum_threshold if cfg.fusion == 'cusum' else 0.0),
               -cfg.vote_k if cfg.fusion == 'vote' else 0)
        if best is None or key < best[0]:
            best = (key, cfg, info)
    (delay, *_), cfg, info = best
    out = {k: getattr(cfg, k) for k in ('alpha', 'fusion', 'recovery_frames')}
    if cfg.fusion == 'cusum':
        out.update(cusum_window=cfg.cusum_window, cusum_drift=cfg.cusum_drift,
                   cusum_threshold=round(cfg.cusum_threshold, 3))
    else:
        out.update(vote_k=cfg.vote_k, vote_n=cfg.vote_n)
    out['tuning'] = {'method': 'ID-only: quiet on held-out ID sequences with a margin; fastest '
                               'reaction to a synthetic worst-case shift'
                               + ('; each sequence against the calibration without itself'
                                  if sequence_calibrations else ''), **info,
                     'synthetic_delay_frames': delay, 'id_sequences': len(id_sequences),
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
    ap.add_argument('--margin', type=float, default=1.5)
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap, split='val')   # --dataset: the validation split's ID
    require(ap, sets, 'id', why='(held-out ID sequences to stay quiet on)')
    print(json.dumps(retune(a.model, sets['id'], margin=a.margin), indent=1))
    return 0
