"""`leanood evaluate`: how well bundles separate ID from OOD recordings, per frame and over time.

    leanood evaluate --model vae_lean --model earlin_lite0 --dataset data/duckietown/bags --split test
    leanood evaluate --model my_bundle --fit train.bag --calib calib.bag --id id.bag --ood rain.bag

Per OOD set (frames grouped by their shift label, or by recording when unlabelled): AUROC and FPR
at 95 % TPR per frame; through the node's decision layer (the bundle's recommended fusion unless
overridden): AUROC of the fused statistic, detection delay after the shift's onset, and false
alarms on every ID recording.  Every report also scores the trivial reference (Mahalanobis on six
colour statistics, fitted on the --fit ID frames) so you see whether a detector beats the floor.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..bundle import load_bundle
from ..decision import DecisionConfig
from ..detectors import build_detector
from ..parameters import DECISION_KEYS, defaults
from ..preprocess import Preprocessing
from .frames import load_frames
from .metrics import ColourStatsReference, frame_metrics, sequence_metrics
from .recording_sets import add_recording_args, recording_sets, require

REFERENCE_PRE = Preprocessing(width=224, height=224, interpolation='area')


def _per_recording(paths, pre, stride=1) -> list:
    return [(Path(p), load_frames([p], pre, stride=stride, progress=False)) for p in paths]


def _decision_config(bundle_decision: dict | None, overrides: dict) -> DecisionConfig:
    values = defaults(bundle_decision)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DecisionConfig(**{k: values[k] for k in DECISION_KEYS})


def evaluate_scorer(name: str, score_fn, pre: Preprocessing, calibration: np.ndarray,
                    id_paths, ood_paths, config: DecisionConfig, stride: int = 1) -> dict:
    """score_fn: uint8 N x H x W x 3 (pre's size/colour order) -> N scores."""
    id_recs = _per_recording(id_paths, pre, stride)
    ood_recs = _per_recording(ood_paths, pre, stride)
    id_scores, id_fused, id_seq = [], [], {}
    for path, fs in id_recs:
        s = score_fn(fs.images)
        m, fused = sequence_metrics(s, np.zeros(len(s), bool), calibration, config)
        id_scores.append(s)
        id_fused.append(fused)
        id_seq[path.name] = m
    id_scores = np.concatenate(id_scores) if id_scores else np.zeros(0)
    id_fused = np.concatenate(id_fused) if id_fused else np.zeros(0)
    groups = {}
    for path, fs in ood_recs:
        s = score_fn(fs.images)
        ood = fs.is_ood if any(lab is not None for lab in fs.labels) else np.ones(len(fs), bool)
        key = next((lab for lab, o in zip(fs.labels, ood) if o and lab), None) or path.name
        m, fused = sequence_metrics(s, ood, calibration, config)
        g = groups.setdefault(key, {'scores': [], 'fused': [], 'sequences': {}})
        g['scores'].append(s[ood])
        g['fused'].append(fused[ood])
        g['sequences'][path.name] = m
    per_set = {}
    for key, g in sorted(groups.items()):
        ood_s = np.concatenate(g['scores'])
        r = frame_metrics(id_scores, ood_s)
        fused = frame_metrics(id_fused, np.concatenate(g['fused']))
        delays = [m['delay'] for m in g['sequences'].values() if m.get('delay') is not None]
        r.update(fused_auroc=fused['auroc'], sequences=len(g['sequences']),
                 detected=sum(m.get('detected', False) for m in g['sequences'].values()),
                 delay_mean=float(np.mean(delays)) if delays else None,
                 delay_max=int(max(delays)) if delays else None,
                 false_alarms_before_onset=sum(m['false_alarm_episodes']
                                               for m in g['sequences'].values()),
                 per_sequence=g['sequences'])
        per_set[key] = r
    aurocs = [r['auroc'] for r in per_set.values()]
    return {'name': name, 'per_set': per_set, 'id_sequences': id_seq,
            'mean_auroc': float(np.mean(aurocs)) if aurocs else None,
            'min_auroc': float(np.min(aurocs)) if aurocs else None,
            'mean_fpr95': float(np.mean([r['fpr95'] for r in per_set.values()])) if aurocs else None,
            'id_false_alarm_episodes': sum(m['false_alarm_episodes'] for m in id_seq.values()),
            'id_false_alarm_frames': sum(m['false_alarm_frames'] for m in id_seq.values()),
            'decision': config.__dict__}


def evaluate_bundle(model: str, id_paths, ood_paths, overrides=None, stride: int = 1,
                    threads: int = 2) -> dict:
    bundle = load_bundle(model)
    det = build_detector(bundle, threads=threads)
    cfg = _decision_config(bundle.manifest.get('decision'), overrides or {})
    r = evaluate_scorer(bundle.name, det.predict_resized, bundle.preprocessing,
                        bundle.calibration_scores, id_paths, ood_paths, cfg, stride)
    r['bundle'] = str(bundle.path)
    return r


def evaluate_reference(fit_paths, calib_paths, id_paths, ood_paths, overrides=None,
                       stride: int = 1) -> dict:
    ref = ColourStatsReference().fit(load_frames(fit_paths, REFERENCE_PRE).images)
    calib = ref.predict(load_frames(calib_paths, REFERENCE_PRE).images) if calib_paths else \
        ref.predict(load_frames(fit_paths, REFERENCE_PRE).images)
    cfg = _decision_config(None, overrides or {})
    return evaluate_scorer(ref.name, ref.predict, REFERENCE_PRE, calib, id_paths, ood_paths, cfg,
                           stride)


def format_report(results: list) -> str:
    names = [r['name'] for r in results]
    sets = sorted({k for r in results for k in r['per_set']})
    lines = ['| OOD set | ' + ' | '.join(f'{n} AUROC / FPR95 / delay' for n in names) + ' |',
             '|---|' + '---|' * len(names)]
    for s in sets:
        cells = []
        for r in results:
            m = r['per_set'].get(s)
            if m is None:
                cells.append('-')
                continue
            delay = '-' if m['delay_mean'] is None else f"{m['delay_mean']:.1f}"
            cells.append(f"{m['auroc']:.4f} / {m['fpr95']:.3f} / {delay} "
                         f"({m['detected']}/{m['sequences']})")
        lines.append(f'| {s} | ' + ' | '.join(cells) + ' |')
    lines.append('| **mean AUROC (min)** | ' + ' | '.join(
        f"**{r['mean_auroc']:.4f}** ({r['min_auroc']:.4f})" for r in results) + ' |')
    lines.append('| ID false alarms (episodes / frames) | ' + ' | '.join(
        f"{r['id_false_alarm_episodes']} / {r['id_false_alarm_frames']}" for r in results) + ' |')
    return '\n'.join(lines)


def plot_roc(results_scores: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (id_s, ood_s) in results_scores.items():
        y = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
        fpr, tpr, _ = roc_curve(y, np.r_[id_s, ood_s])
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], 'k:', lw=0.8)
    ax.set_xlabel('false-positive rate (ID frames)')
    ax.set_ylabel('true-positive rate (OOD frames)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def summary(r: dict) -> dict:
    return {'mean_auroc': r['mean_auroc'], 'min_auroc': r['min_auroc'],
            'mean_fpr95': r['mean_fpr95'],
            'per_shift': {k: {'auroc': round(m['auroc'], 5), 'fpr95': round(m['fpr95'], 5),
                              'delay_mean': m['delay_mean'],
                              'detected': f"{m['detected']}/{m['sequences']}"}
                          for k, m in r['per_set'].items()},
            'id_false_alarm_episodes': r['id_false_alarm_episodes'],
            'id_false_alarm_frames': r['id_false_alarm_frames'],
            'id_sequences': {k: m['false_alarm_episodes'] for k, m in r['id_sequences'].items()}}


def record_metrics(r: dict, dataset: str, split: str, reference: dict | None) -> None:
    """Write an evaluation summary into the bundle's metrics (the model card follows)."""
    from ..bundle import write_bundle
    path = Path(r['bundle'])
    m = json.loads((path / 'bundle.json').read_text())
    entry = summary(r)
    if reference is not None:
        entry['reference_colour_stats'] = {
            'mean_auroc': reference['mean_auroc'],
            'per_shift_auroc': {k: round(v['auroc'], 5) for k, v in reference['per_set'].items()}}
    m.setdefault('metrics', {})[f'{dataset}/{split}'] = entry
    write_bundle(path, m)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood evaluate', description=__doc__.splitlines()[0])
    ap.add_argument('--model', action='append', default=[], help='bundle (repeatable)')
    add_recording_args(ap)
    ap.add_argument('--split', default='test', help='--dataset split to judge (fit/calib: train/calib)')
    ap.add_argument('--no-reference', action='store_true')
    ap.add_argument('--stride', type=int, default=1, help='use every k-th frame')
    ap.add_argument('--json', help='write the full results as JSON here (- for stdout)')
    ap.add_argument('--roc', type=Path, help='write a ROC plot (PNG) of all OOD frames')
    for k in ('alpha', 'cusum_threshold', 'cusum_drift'):
        ap.add_argument(f'--{k.replace("_", "-")}', type=float)
    ap.add_argument('--fusion', choices=('none', 'vote', 'cusum'))
    ap.add_argument('--record', action='store_true',
                    help="store the summary in each bundle's metrics (and model card)")
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap)
    require(ap, sets, 'id', 'ood')
    overrides = {'alpha': a.alpha, 'cusum_threshold': a.cusum_threshold,
                 'cusum_drift': a.cusum_drift, 'fusion': a.fusion}
    results = [evaluate_bundle(m, sets['id'], sets['ood'], overrides, a.stride) for m in a.model]
    if not a.no_reference:
        if not sets['fit']:
            ap.error('the reference needs --fit ID recordings (or --no-reference)')
        results.append(evaluate_reference(sets['fit'], sets['calib'], sets['id'], sets['ood'],
                                          overrides, a.stride))
    report = format_report(results)
    if a.json != '-':
        print(report)
    if a.json:
        text = json.dumps({'recordings': {k: [str(p) for p in v] for k, v in sets.items()},
                           'results': results}, indent=1, default=str)
        if a.json == '-':
            print(text)
        else:
            Path(a.json).write_text(text)
    if a.record:
        ref = next((r for r in results if r['name'] == ColourStatsReference.name), None)
        for r in results:
            if 'bundle' in r:
                record_metrics(r, a.dataset.name if a.dataset else 'custom', a.split, ref)
    if a.roc:
        scores = {}
        for m in a.model:
            b = load_bundle(m)
            det = build_detector(b, threads=2)
            id_fs = load_frames(sets['id'], b.preprocessing)
            ood_fs = load_frames(sets['ood'], b.preprocessing)
            ood_fs = ood_fs.subset(ood_fs.is_ood)
            scores[b.name] = (det.predict_resized(id_fs.images), det.predict_resized(ood_fs.images))
        plot_roc(scores, a.roc)
    return 0


if __name__ == '__main__':
    sys.exit(main())
