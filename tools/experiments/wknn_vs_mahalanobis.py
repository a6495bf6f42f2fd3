"""Experiment (not part of the package): whether `wknn` helps a VAE bundle's `features` head.

`wknn` is the whitened nearest-neighbour score that earlin_lite0 ships.  Mahalanobis vs wknn
fitted on the same ID training frames; AUROC per validation/test shift and, per ID sequence, the
longest run of frames above the calibration 99th percentile (a false-alarm proxy).  Choose on
validation only.

    .venv/bin/python tools/experiments/wknn_vs_mahalanobis.py vae_lean
    # needs data/duckietown/bags

Result on 2026-11-25 (vae_lean): validation mean AUROC 0.9950 (wknn) vs 0.9939, min (blur)
0.9603 vs 0.9516; longest ID run above the calibration q99 on test_udem1_0: 0 vs 8 frames.
"""
import json
from pathlib import Path
import sys

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from leanood_ros.bundle import load_bundle  # noqa: E402
from leanood_ros.detectors import build_detector  # noqa: E402
from leanood_ros.evaluation.frames import load_frames  # noqa: E402
from leanood_ros.evaluation.metrics import frame_metrics  # noqa: E402
from leanood_ros.evaluation.recording_sets import resolve_dataset  # noqa: E402
from leanood_ros.training.earlin import FeatureScorer  # noqa: E402

DATASET = REPO / 'data' / 'duckietown' / 'bags'


def longest_run(mask) -> int:
    best = cur = 0
    for m in mask:
        cur = cur + 1 if m else 0
        best = max(best, cur)
    return best


def main(model: str) -> None:
    bundle = load_bundle(model)
    det, pre = build_detector(bundle), bundle.preprocessing
    output = 'features'   # the encoder's first-block statistics

    def features(paths, stride=1):
        fs = load_frames(paths, pre, stride=stride, progress=False)
        f = np.concatenate([det.outputs_resized(fs.images[i:i + 256])[output]
                            for i in range(0, len(fs), 256)])
        return f.reshape(len(f), -1).astype(np.float64), fs

    val, test = resolve_dataset(DATASET, 'val'), resolve_dataset(DATASET, 'test')
    fit, _ = features(val['fit'], 2)
    cal, _ = features(val['calib'] + [p for p in val['id'] if 'newmap' in p.name])
    seqs = {}
    for split, sets in (('val', val), ('test', test)):
        for p in sets['id'] + sets['ood']:
            f, fs = features([p])
            seqs[(split, p.name)] = (f, fs.is_ood, list(fs.labels))
    for distance in ('mahalanobis', 'wknn'):
        scorer = FeatureScorer(distance).fit(fit)
        q99 = np.quantile(scorer.predict(cal), 0.99)
        result = {}
        for split in ('val', 'test'):
            ids, per_shift, runs = [], {}, {}
            for (s, name), (f, is_ood, labels) in seqs.items():
                if s != split:
                    continue
                x = scorer.predict(f)
                ids.append(x[~is_ood])
                if is_ood.any():
                    shift = next(lab for lab, o in zip(labels, is_ood) if o)
                    per_shift.setdefault(shift, []).append(x[is_ood])
                else:
                    runs[name] = longest_run(x > q99)
            id_scores = np.concatenate(ids)
            m = {k: frame_metrics(id_scores, np.concatenate(v)) for k, v in per_shift.items()}
            result[split] = {
                'mean_auroc': round(float(np.mean([v['auroc'] for v in m.values()])), 4),
                'min_auroc': round(float(np.min([v['auroc'] for v in m.values()])), 4),
                'mean_fpr95': round(float(np.mean([v['fpr95'] for v in m.values()])), 4),
                'longest_id_run_over_calib_q99': runs}
        print(model, distance, json.dumps(result), flush=True)


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'vae_lean')
