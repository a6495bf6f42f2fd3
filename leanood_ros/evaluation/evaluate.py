r"""`leanood evaluate`: how well bundles separate ID from OOD recordings, per frame and over time.

    leanood evaluate --model vae_lean --model earlin_lite0 --dataset data/duckietown/bags \
                     --split test
    leanood evaluate --model my_bundle --fit train.bag --calib calib.bag --id id.bag --ood rain.bag
    leanood evaluate --model vae_lean --id my_runs/normal --ood my_runs/shifted --timeline plots/

Per OOD set (frames grouped by their shift label; by recording when a recording is unlabelled or
its labels name no shift): AUROC and FPR at 95 % TPR per frame; through the node's decision layer
(the bundle's recommended fusion unless overridden): AUROC of the fused statistic, detection delay
after the shift's onset, and false alarms on every ID recording.  With --fit ID recordings the
report also scores the trivial reference (Mahalanobis on six colour statistics, fitted on those
frames) so you see whether a detector beats the floor.  Every argument (models, recordings,
output paths, decision overrides) is checked before anything is scored; `--json` holds every
frame's score and verdict and `--timeline DIR` draws them, one PNG per recording.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import sys

import numpy as np

from .frames import load_frames
from .metrics import alarm_metrics, ColourStatsReference, frame_metrics, run_sequence
from .recording_sets import add_recording_args, recording_sets, require
from ..bundle import BundleError, default_models_dir, load_bundle
from ..data.recordings import UNNAMED_SHIFT
from ..decision import ConformalPValues, DecisionConfig
from ..detectors import build_detector
from ..parameters import DECISION_KEYS, defaults
from ..preprocess import Preprocessing

REFERENCE_PRE = Preprocessing(width=224, height=224, interpolation='area')


def sequence_names(paths) -> list:
    """Name each recording for display: its name, prefixed by its folder where names repeat."""
    names = [Path(p).name for p in paths]
    return [f'{Path(p).parent.name}/{n}' if names.count(n) > 1 else n
            for p, n in zip(paths, names)]


def _decision_config(bundle_decision: dict | None, overrides: dict) -> DecisionConfig:
    values = defaults(bundle_decision)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return DecisionConfig(**{k: values[k] for k in DECISION_KEYS})


def _ood_set(name: str, labels, ood) -> str:
    """Return the OOD set a recording's frames belong to.

    The first OOD frame's shift name, else the recording (unlabelled, or labels.csv without a
    shift column).
    """
    label = next((lab for lab, o in zip(labels, ood) if o), None)
    return name if label in (None, UNNAMED_SHIFT) else label


def _sequence(scores, safe, fused, ood) -> dict:
    """One recording's temporal metrics plus every frame (for --json and --timeline)."""
    return {**alarm_metrics(safe, ood), 'score': [round(float(x), 6) for x in scores],
            'fused': [round(float(x), 6) for x in fused],
            'alarm': [int(not x) for x in safe], 'ood': [int(x) for x in ood]}


def evaluate_scorer(name: str, score_fn, pre: Preprocessing, calibration: np.ndarray,
                    id_paths, ood_paths, config: DecisionConfig, stride: int = 1,
                    progress: bool = True) -> dict:
    """score_fn: uint8 N x H x W x 3 (pre's size/colour order) -> N scores."""
    from tqdm import tqdm
    paths = list(id_paths) + list(ood_paths)
    names = sequence_names(paths)
    id_seq, groups = {}, {}
    id_scores, id_fused = [], []
    bar = tqdm(total=len(paths), desc=f'scoring {name}', unit='rec', disable=not progress)
    for k, (path, seq_name) in enumerate(zip(paths, names)):
        bar.set_postfix_str(seq_name, refresh=False)
        fs = load_frames([path], pre, stride=stride, progress=False)
        s = np.asarray(score_fn(fs.images), dtype=np.float64)
        safe, fused = run_sequence(s, calibration, config)
        bar.update()
        if k < len(id_paths):
            id_seq[seq_name] = _sequence(s, safe, fused, np.zeros(len(s), bool))
            id_scores.append(s)
            id_fused.append(fused)
            continue
        ood = fs.is_ood if any(lab is not None for lab in fs.labels) else np.ones(len(fs), bool)
        g = groups.setdefault(_ood_set(seq_name, fs.labels, ood),
                              {'scores': [], 'fused': [], 'sequences': {}})
        g['scores'].append(s[ood])
        g['fused'].append(fused[ood])
        g['sequences'][seq_name] = _sequence(s, safe, fused, ood)
    bar.close()
    id_scores = np.concatenate(id_scores) if id_scores else np.zeros(0)
    id_fused = np.concatenate(id_fused) if id_fused else np.zeros(0)
    per_set = {}
    for key, g in sorted(groups.items()):
        r = frame_metrics(id_scores, np.concatenate(g['scores']))
        fused = frame_metrics(id_fused, np.concatenate(g['fused']))
        seqs = g['sequences'].values()
        delays = [m['delay'] for m in seqs if m.get('delay') is not None]
        r.update(fused_auroc=fused['auroc'], sequences=len(seqs),
                 detected=sum(m.get('detected', False) for m in seqs),
                 delay_mean=float(np.mean(delays)) if delays else None,
                 delay_max=int(max(delays)) if delays else None,
                 false_alarms_before_onset=sum(m['false_alarm_episodes'] for m in seqs),
                 per_sequence=g['sequences'])
        per_set[key] = r
    aurocs = [r['auroc'] for r in per_set.values()]
    threshold = ConformalPValues(calibration).threshold(config.alpha)
    return {'name': name, 'per_set': per_set, 'id_sequences': id_seq,
            'mean_auroc': float(np.mean(aurocs)) if aurocs else None,
            'min_auroc': float(np.min(aurocs)) if aurocs else None,
            'mean_fpr95': (float(np.mean([r['fpr95'] for r in per_set.values()]))
                           if aurocs else None),
            'id_false_alarm_episodes': sum(m['false_alarm_episodes'] for m in id_seq.values()),
            'id_false_alarm_frames': sum(m['false_alarm_frames'] for m in id_seq.values()),
            'frame_threshold': config.score_threshold or
            (threshold if math.isfinite(threshold) else None),
            'calibration_frames': int(len(calibration)),
            'decision': config.__dict__}


def evaluate_bundle(model: str, id_paths, ood_paths, overrides=None, stride: int = 1,
                    threads: int = 2, progress: bool = True) -> dict:
    bundle = load_bundle(model)
    det = build_detector(bundle, threads=threads)
    cfg = _decision_config(bundle.manifest.get('decision'), overrides or {})
    r = evaluate_scorer(bundle.name, det.predict_resized, bundle.preprocessing,
                        bundle.calibration_scores, id_paths, ood_paths, cfg, stride, progress)
    r['bundle'] = str(bundle.path)
    return r


def evaluate_reference(fit_paths, calib_paths, id_paths, ood_paths, overrides=None,
                       stride: int = 1, progress: bool = True) -> dict:
    ref = ColourStatsReference().fit(load_frames(fit_paths, REFERENCE_PRE).images)
    calib = ref.predict(load_frames(calib_paths or fit_paths, REFERENCE_PRE).images)
    cfg = _decision_config(None, overrides or {})
    return evaluate_scorer(ref.name, ref.predict, REFERENCE_PRE, calib, id_paths, ood_paths, cfg,
                           stride, progress)


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


def _all_frames(r: dict) -> tuple:
    """(ID scores, OOD-frame scores) of one result, from its per-frame records."""
    id_s = [x for m in r['id_sequences'].values() for x in m['score']]
    ood_s = [x for g in r['per_set'].values() for m in g['per_sequence'].values()
             for x, o in zip(m['score'], m['ood']) if o]
    return np.array(id_s), np.array(ood_s)


def plot_roc(results: list, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve
    fig, ax = plt.subplots(figsize=(5, 5))
    for r in results:
        id_s, ood_s = _all_frames(r)
        y = np.r_[np.zeros(len(id_s)), np.ones(len(ood_s))]
        fpr, tpr, _ = roc_curve(y, np.r_[id_s, ood_s])
        ax.plot(fpr, tpr, label=r['name'])
    ax.plot([0, 1], [0, 1], 'k:', lw=0.8)
    ax.set_xlabel('false-positive rate (ID frames)')
    ax.set_ylabel('true-positive rate (OOD frames)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _spans(mask):
    """(start, end) index pairs of the runs of True in a boolean sequence."""
    m = np.r_[0, np.asarray(mask, int), 0]
    edges = np.flatnonzero(np.diff(m))
    return list(zip(edges[::2], edges[1::2]))


def _sequences(r: dict) -> dict:
    out = dict(r['id_sequences'])
    for g in r['per_set'].values():
        out.update(g['per_sequence'])
    return out


def write_timelines(results: list, out: Path) -> list:
    """Draw one PNG per recording: every scorer's per-frame score against its threshold.

    Also the frames the decision layer raised an alarm on (red) and the frames labelled OOD
    (grey).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    per_result = [_sequences(r) for r in results]
    names = list(dict.fromkeys(n for seqs in per_result for n in seqs))
    written = []
    for name in names:
        rows = [(r, seqs[name]) for r, seqs in zip(results, per_result) if name in seqs]
        fig, axes = plt.subplots(len(rows), 1, figsize=(11, 2.2 * len(rows) + 0.4), sharex=True,
                                 squeeze=False)
        for ax, (r, m) in zip(axes[:, 0], rows):
            score = np.asarray(m['score'])
            for k, (a, b) in enumerate(_spans(m['ood'])):
                ax.axvspan(a - 0.5, b - 0.5, color='0.85', lw=0,
                           label='labelled OOD' if k == 0 else None)
            for k, (a, b) in enumerate(_spans(m['alarm'])):
                ax.axvspan(a - 0.5, b - 0.5, ymin=0.0, ymax=0.06, color='tab:red', lw=0,
                           label='alarm (unsafe)' if k == 0 else None)
            ax.plot(np.arange(len(score)), score, color='tab:blue', lw=1, label='score')
            alpha = r['decision']['alpha']
            if r.get('frame_threshold') is not None:
                ax.axhline(r['frame_threshold'], color='tab:orange', ls='--', lw=1,
                           label=f'threshold (alpha {alpha:g})')
            else:   # p-values cannot reach alpha with this few calibration scores
                ax.plot([], [], ' ', label=f'no threshold at alpha {alpha:g} '
                                           f"({r['calibration_frames']} calibration scores)")
            if len(score) and score.min() > 0:
                ax.set_yscale('log')
            delay = '' if m.get('delay') is None else f", delay {m['delay']} frames"
            ax.set_title(f"{r['name']}: {m['false_alarm_episodes']} false-alarm episodes "
                         f"({m['false_alarm_frames']} frames){delay}", fontsize=9)
            ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
        axes[-1, 0].set_xlabel('frame')
        fig.suptitle(name, fontsize=10)
        fig.tight_layout()
        path = out / (name.replace('/', '__') + '.png')
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


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
    from ..bundle import load_bundle, save_bundle
    bundle = load_bundle(r['bundle'])
    m = bundle.manifest
    entry = summary(r)
    if reference is not None:
        entry['reference_colour_stats'] = {
            'mean_auroc': reference['mean_auroc'],
            'per_shift_auroc': {k: round(v['auroc'], 5) for k, v in reference['per_set'].items()}}
    m.setdefault('metrics', {})[f'{dataset}/{split}'] = entry
    save_bundle(bundle)


def _load_models(ap, models: list, overrides: dict) -> None:
    """Every --model loads (hashes verified) and takes the decision overrides, or exit 2."""
    for m in models:
        try:
            bundle = load_bundle(m)
        except BundleError as exc:
            hint = ''
            if os.sep not in m and not Path(m).exists():   # a name: say which names there are
                known = sorted(d.name for d in default_models_dir().glob('*')
                               if (d / 'bundle.json').is_file())
                hint = f" (bundles in {default_models_dir()}: {', '.join(known) or 'none'})"
            ap.error(f'--model {m}: {exc}{hint}')
        problems = _decision_config(bundle.manifest.get('decision'), overrides).validate()
        if problems:
            ap.error(f'decision settings for {bundle.name}: ' + '; '.join(problems))


def _check_output(ap, option: str, path, folder: bool = False) -> None:
    if path is None or str(path) == '-':
        return
    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            ap.error(f'{option} {path}: exists and is not a folder')
    elif not path.parent.is_dir() or path.is_dir():
        ap.error(f'{option} {path}: ' + ('is a folder' if path.is_dir() else
                                         f'folder {path.parent} does not exist'))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood evaluate', description=__doc__.splitlines()[0])
    ap.add_argument('--model', action='append', default=[], help='bundle (repeatable)')
    add_recording_args(ap)
    ap.add_argument('--split', default='test',
                    help='--dataset split to judge (fit/calib come from train/calib)')
    ap.add_argument('--no-reference', action='store_true',
                    help='skip the colour-statistics reference')
    ap.add_argument('--stride', type=int, default=1, help='use every k-th frame')
    ap.add_argument('--json',
                    help='write the full results, every frame included, here (- for stdout)')
    ap.add_argument('--roc', type=Path, help='write a ROC plot (PNG) of all OOD frames')
    ap.add_argument('--timeline', type=Path, metavar='DIR',
                    help='write one PNG per recording: scores, threshold, alarms, labels')
    for k in ('alpha', 'cusum_threshold', 'cusum_drift'):
        ap.add_argument(f'--{k.replace("_", "-")}', type=float)
    ap.add_argument('--fusion', choices=('none', 'vote', 'cusum'))
    ap.add_argument('--record', action='store_true',
                    help="store the summary in each bundle's metrics (and model card)")
    a = ap.parse_args(argv)
    # everything is checked before the first frame is scored
    if a.stride < 1:
        ap.error(f'--stride must be >= 1, got {a.stride}')
    overrides = {'alpha': a.alpha, 'cusum_threshold': a.cusum_threshold,
                 'cusum_drift': a.cusum_drift, 'fusion': a.fusion}
    reference = not a.no_reference
    if not a.model and not reference:
        ap.error('nothing to evaluate: give --model (or drop --no-reference)')
    _check_output(ap, '--json', a.json)
    _check_output(ap, '--roc', a.roc)
    _check_output(ap, '--timeline', a.timeline, folder=True)
    sets = recording_sets(a, ap)
    require(ap, sets, 'id', 'ood')
    _load_models(ap, a.model, overrides)
    if reference and not sets['fit']:
        if not a.model:
            ap.error('the colour-statistics reference needs --fit ID recordings; give --model '
                     'or --fit')
        print('note: no --fit recordings, so the colour-statistics reference is not scored '
              '(give --fit ID recordings to compare against it)', file=sys.stderr)
        reference = False
    if reference and a.split == 'val' and a.dataset:
        # the val split's held-out-map ID recordings calibrate the tools; not when judging them
        sets['calib'] = [p for p in sets['calib'] if p not in sets['id']]

    results = [evaluate_bundle(m, sets['id'], sets['ood'], overrides, a.stride) for m in a.model]
    if reference:
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
        plot_roc(results, a.roc)
    if a.timeline:
        written = write_timelines(results, a.timeline)
        print(f'{len(written)} timelines in {a.timeline}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
