"""Rebuild a VAE bundle whose `features` come from other encoder blocks (feature taps).

The encoder's weights stay (its torch twin in the bundle); only the graph's `features` output
changes - the per-channel mean and standard deviation of the tapped blocks - so the Gaussian
(`mahalanobis`) head is fitted again on the training split, the bundle recalibrated on the
calibration split and its decision tuned on the validation drives:

    .venv/bin/python tools/retap_vae_bundle.py models/vae_lean --taps 0 1 \
        --dataset data/duckietown/bags --tune-with data/heldout/bags --out runs/retap/vae_lean

`--tune-with` adds normal drives to the validation drives the decision is tuned on (the shipped
bundles add the held-out places); then record the test metrics (`leanood evaluate --record`).
Used once to move `vae_lean` from taps [0] to [0, 1] (benchmarks/adapt/TAPS.md: what the
second block adds for motion blur once a new place is pooled in).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leanood_ros.bundle import load_bundle  # noqa: E402
from leanood_ros.evaluation.frames import load_frames  # noqa: E402
from leanood_ros.evaluation.recording_sets import expand, resolve_dataset  # noqa: E402

# metrics measured on the data or the graph: measured again, never carried over
MEASURED = ('validation', 'bags/test', 'bags/val', 'graph_bytes', 'macs', 'params',
            'latency_ms_cpu_1thread', 'speedup_vs_baseline')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('model', type=Path, help='a VAE bundle (its torch twin, else its graph)')
    ap.add_argument('--taps', type=int, nargs='+', required=True, help='encoder blocks to tap')
    ap.add_argument('--dataset', type=Path, required=True, help='built dataset (train/calib/val)')
    ap.add_argument('--out', type=Path, required=True)
    ap.add_argument('--fit-stride', type=int, default=3, help='every k-th training frame')
    ap.add_argument('--tune-with', type=Path, nargs='*', default=[],
                    help='more normal recordings (besides the validation drives) to tune the '
                         'decision on, e.g. data/heldout/bags')
    ap.add_argument('--baseline', type=Path, default=REPO / 'models' / 'vae_baseline',
                    help='bundle the speed-up is measured against (side by side, one run)')
    a = ap.parse_args(argv)
    from leanood_ros.training.architectures import bundle_encoder, count_parameters
    from leanood_ros.training.compress import fit_head, latent_targets, measure_latencies
    from leanood_ros.evaluation.evaluate import evaluate_bundle, summary
    from leanood_ros.evaluation.graph_stats import graph_macs
    from leanood_ros.training.export import provenance, vae_bundle
    from leanood_ros.bundle import save_bundle
    src = load_bundle(a.model)
    graph, taps = src.manifest['graphs']['detector'], sorted(set(a.taps))
    pre, sets = src.preprocessing, resolve_dataset(a.dataset, 'val')
    # without a twin (vae_baseline) it is rebuilt from the graph, and the new bundle stays
    # twin-less
    encoder = bundle_encoder(src, taps)
    from_taps = graph.get('torch', {}).get('architecture', {}).get('feature_taps')
    arch = {k: v for k, v in encoder.arch.items() if k != 'type'}
    fit = load_frames(sets['fit'], pre, stride=a.fit_stride).images
    mu, _, feats = (t.numpy() for t in latent_targets(encoder, fit, features=True))
    cal = load_frames(sets['calib'], pre).images
    old = src.manifest
    prov = dict(old.get('provenance', {}))
    prov['retapped'] = provenance(f'head refitted on {len(fit)} training frames',
                                  {'feature_taps': arch['feature_taps'],
                                   'from_taps': from_taps})
    metrics = {k: v for k, v in old.get('metrics', {}).items() if k not in MEASURED}
    vae_bundle(a.out, old['name'], encoder, arch, pre, cal,
               ', '.join(p.name for p in sets['calib']), head=fit_head('features', mu, feats),
               description=old.get('description', ''), prov=prov, metrics=metrics,
               id_paths=sets['id'] + expand(a.tune_with, '--tune-with'), force=False,
               fit_frames=len(fit), twin='torch' in graph)
    # measured again: validation split (as leanood compress records it) and the graph, timed
    # side by side with the source and the baseline
    b = load_bundle(a.out)
    r = evaluate_bundle(str(a.out), sets['id'], sets['ood'])
    val = summary(r)
    delays = [m['delay_mean'] for m in r['per_set'].values() if m['delay_mean'] is not None]
    graphs = {'new': (a.out / 'encoder.onnx', pre.width),
              'source': (src.path / 'encoder.onnx', pre.width)}
    base = load_bundle(a.baseline)
    graphs['baseline'] = (base.path / 'encoder.onnx', base.preprocessing.width)
    lat = measure_latencies(graphs, threads=1)
    b.manifest['metrics'].update(
        validation={'mean_auroc': val['mean_auroc'], 'min_auroc': val['min_auroc'],
                    'mean_fpr95': val['mean_fpr95'],
                    'per_shift': {k: m['auroc'] for k, m in val['per_shift'].items()},
                    'delay_mean': sum(delays) / len(delays) if delays else None,
                    'id_false_alarms': val['id_false_alarm_episodes']},
        latency_ms_cpu_1thread=lat['new']['p50_ms'],
        latency_ms_cpu_1thread_source=lat['source']['p50_ms'],
        speedup_vs_baseline=lat['baseline']['p50_ms'] / lat['new']['p50_ms'],
        graph_bytes=(a.out / 'encoder.onnx').stat().st_size,
        macs=graph_macs(a.out / 'encoder.onnx'), params=count_parameters(encoder))
    save_bundle(b)
    print(f'{a.out}: taps {arch["feature_taps"]}, {feats.shape[1]} features, '
          f'{len(fit)} fit frames, {len(cal)} calibration frames')
    return 0


if __name__ == '__main__':
    sys.exit(main())
