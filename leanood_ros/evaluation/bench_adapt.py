r"""`leanood bench adapt`: the "new camera" benchmark, every bundle before and after adapting.

Every bundle out of the box and after `leanood adapt`, on a camera set-up and places that no
bundle was fitted or calibrated on.

    benchmarks/adapt/build_data.sh                      # data/newcam/bags (320x240, JPEG q80)
    leanood bench adapt --dataset data/newcam/bags --reference data/duckietown/bags \
                        --out benchmarks/adapt

Per bundle: the recordings of split `train` (2 normal routes per place) are adapt's --fit, split
`calib` (2 more per place) its --calib; split `test` is judged - the other normal routes (false
alarms) and the shifted routes (detection).  Reported side by side: false-alarm episodes and
frames on normal sequences, normal sequences with an alarm, shifted sequences flagged, mean/max
delay, per-shift AUROC and FPR95.  The paper's KL-from-prior head is measured beside the others
(`vae_lean` graph, head `kl_divergence`, calibrated on the reference dataset's calibration
split).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

DEFAULT_MODELS = ('vae_lean', 'vae_student64_fp32', 'vae_baseline', 'earlin_lite0')


def kl_prior_variant(reference: Path, out: Path) -> Path:
    """vae_lean's graph with the paper's score, calibrated on the reference calibration split."""
    from ..bundle import ModelBundle, load_bundle, save_bundle
    from ..calibration import calibrate
    from ..heads import KLPriorHead
    from .frames import load_frames
    from .recording_sets import resolve_dataset
    from .tune import tune_bundle
    src = load_bundle('vae_lean')
    sets = resolve_dataset(reference, 'val')
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for role, g in src.graphs.items():
            (tmp / src.manifest['graphs'][role]['file']).write_bytes(g.read())
        m = json.loads(json.dumps(src.manifest))
        m['graphs']['detector'].pop('torch', None)
        m.update(name='vae_lean_kl_prior', metrics={},
                 description="vae_lean's encoder scored by the paper's KL divergence from the "
                             'prior (all 30 latent dimensions)')
        m['detector'].pop('score', None)
        b = ModelBundle.draft(tmp, m, KLPriorHead())
        calibrate(b, load_frames(sets['calib'], b.preprocessing).images,
                  ', '.join(p.name for p in sets['calib']))
        tune_bundle(b, sets['id'])
        save_bundle(b, out, force=True)
    return out


def _row(r: dict, n_normal: int) -> dict:
    seqs = [m for s in r['per_set'].values() for m in s['per_sequence'].values()]
    delays = [m['delay'] for m in seqs if m.get('delay') is not None]
    return {
        'mean_auroc': r['mean_auroc'], 'min_auroc': r['min_auroc'], 'mean_fpr95': r['mean_fpr95'],
        'per_shift': {k: {'auroc': round(v['auroc'], 5), 'fpr95': round(v['fpr95'], 5),
                          'detected': f"{v['detected']}/{v['sequences']}",
                          'delay_mean': v['delay_mean']} for k, v in r['per_set'].items()},
        'flagged': sum(bool(m.get('detected')) for m in seqs), 'shifted': len(seqs),
        'delay_mean': float(np.mean(delays)) if delays else None,
        'delay_max': int(max(delays)) if delays else None,
        'fa_episodes': r['id_false_alarm_episodes'], 'fa_frames': r['id_false_alarm_frames'],
        'normal_with_alarm': sum(1 for m in r['id_sequences'].values()
                                 if m['false_alarm_episodes']),
        'normal_sequences': n_normal,
        'fa_per_sequence': {k: m['false_alarm_episodes'] for k, m in r['id_sequences'].items()},
    }


def run(dataset: Path, models, work: Path, reference: Path | None = None,
        benign: int = 0) -> dict:
    from ..training.adapt import adapt_bundle
    from .evaluate import evaluate_bundle
    from .recording_sets import resolve_dataset
    sets = resolve_dataset(dataset, 'test')
    work.mkdir(parents=True, exist_ok=True)
    models = list(models)
    if reference is not None:
        models.append(str(kl_prior_variant(reference, work / 'vae_lean_kl_prior')))
    results = {'dataset': str(dataset), 'fit': [p.name for p in sets['fit']],
               'calib': [p.name for p in sets['calib']], 'normal': [p.name for p in sets['id']],
               'shifted': [p.name for p in sets['ood']], 'benign': benign, 'bundles': {}}
    for model in models:
        t0 = time.perf_counter()
        before = evaluate_bundle(model, sets['id'], sets['ood'])
        name = before['name']
        adapted = work / f'{name}_adapted'
        summary = adapt_bundle(model, adapted, sets['fit'], sets['calib'], force=True,
                               benign=benign,
                               log=lambda m: print(f'[{name}] {m}', file=sys.stderr))
        after = evaluate_bundle(str(adapted), sets['id'], sets['ood'])
        results['bundles'][name] = {'before': _row(before, len(sets['id'])),
                                    'after': _row(after, len(sets['id'])),
                                    'adapt': {k: v for k, v in summary.items()
                                              if k not in ('decision', 'calib_recordings')},
                                    'seconds': round(time.perf_counter() - t0, 1)}
        print(f'{name}: {markdown_row(name, results["bundles"][name])}', file=sys.stderr)
    return results


def markdown_row(name: str, b: dict) -> str:
    def cells(r):
        return (f"{r['normal_with_alarm']}/{r['normal_sequences']} | {r['fa_episodes']} | "
                f"{r['fa_frames']} | {r['flagged']}/{r['shifted']} | "
                f"{r['delay_mean']:.2f} / {r['delay_max']} | {r['mean_auroc']:.4f} | "
                f"{r['min_auroc']:.4f} | {r['mean_fpr95']:.4f}")
    return (f"| {name} | out of the box | {cells(b['before'])} |\n"
            f"| | adapted | {cells(b['after'])} |")


def markdown(results: dict) -> str:
    lines = ['# New camera benchmark: out of the box and after `leanood adapt`', '',
             f"Data: `{results['dataset']}` (320x240, JPEG q80, maps no bundle saw).  adapt "
             f"--fit {len(results['fit'])} normal routes, --calib {len(results['calib'])} others "
             f"(2 + 2 per place); judged: {len(results['normal'])} other normal routes and "
             f"{len(results['shifted'])} shifted routes.  Benign camera variants in adapt: "
             f"{results['benign']}.  Produced by `leanood bench adapt` (machine below).", '',
             '| bundle | | normal sequences with an alarm | false-alarm episodes | false-alarm '
             'frames | shifted flagged | delay mean / max (frames) | mean AUROC | min AUROC | '
             'mean FPR95 |', '|---|---|---|---|---|---|---|---|---|---|']
    for name, b in results['bundles'].items():
        lines.append(markdown_row(name, b))
    shifts = sorted({s for b in results['bundles'].values() for s in b['before']['per_shift']})
    lines += ['', '## Per shift: AUROC / FPR95 (out of the box -> adapted)', '',
              '| bundle | ' + ' | '.join(shifts) + ' |', '|---|' + '---|' * len(shifts)]
    for name, b in results['bundles'].items():
        cells = []
        for s in shifts:
            x, y = b['before']['per_shift'].get(s), b['after']['per_shift'].get(s)
            cells.append('-' if not (x and y) else
                         f"{x['auroc']:.3f}/{x['fpr95']:.3f} -> {y['auroc']:.3f}/{y['fpr95']:.3f}")
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Adaptation', '']
    for name, b in results['bundles'].items():
        lines.append(f"- {name}: {json.dumps(b['adapt'])} ({b['seconds']} s incl. evaluation)")
    if results.get('machine'):
        lines += ['', f"Machine: {json.dumps(results['machine'])}"]
    return '\n'.join(lines) + '\n'


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results['bundles'])
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, title in ((axes[0], 'normal_with_alarm', 'normal sequences with an alarm'),
                           (axes[1], 'fa_frames', 'false-alarm frames (normal sequences)')):
        for k, (stage, colour) in enumerate((('before', '#d62728'), ('after', '#2ca02c'))):
            vals = [results['bundles'][n][stage][key] for n in names]
            ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, color=colour,
                   label='out of the box' if stage == 'before' else 'adapted (2+2 routes/place)')
        ax.set_xticks(x, names, rotation=20, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis='y', alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    from .bench import machine, publish
    ap = argparse.ArgumentParser(prog='leanood bench adapt', description=__doc__.splitlines()[0])
    ap.add_argument('--dataset', type=Path, default=Path('data/newcam/bags'))
    ap.add_argument('--reference', type=Path, help="the shipped bundles' dataset (calibrates "
                                                   'the KL-from-prior variant); omit to skip it')
    ap.add_argument('--models', default=','.join(DEFAULT_MODELS))
    ap.add_argument('--benign', type=int, default=0)
    ap.add_argument('--work', type=Path, default=Path('runs/bench_adapt'))
    ap.add_argument('--out', type=Path, help='folder for results.json, README.md and adapt.png')
    a = ap.parse_args(argv)
    results = run(a.dataset, [m for m in a.models.split(',') if m], a.work, a.reference,
                  a.benign)
    results['machine'] = machine()
    text = markdown(results)
    publish(results, text, a.out)
    if a.out:
        plot(results, a.out / 'adapt.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
