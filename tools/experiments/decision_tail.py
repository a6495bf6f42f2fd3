"""How the decision tuning of `leanood adapt` was chosen: p-value tail, margin, subtle weight.

Run after `leanood bench adapt` (it reads the adapted bundles in runs/bench_adapt):

    .venv/bin/python tools/experiments/decision_tail.py > benchmarks/adapt/DECISION.md

Per adapted bundle, the decision is re-tuned as adapt tunes it (leave-one-recording-out on the
calibration recordings) under each variant, then judged on the benchmark's normal and shifted
test routes.  The heads and calibration scores are the adapted bundle's, only the tuning varies.
"""
from pathlib import Path
import sys

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from leanood_ros.bundle import load_bundle  # noqa: E402
from leanood_ros.decision import DecisionConfig  # noqa: E402
from leanood_ros.detectors import build_detector  # noqa: E402
from leanood_ros.evaluation.frames import load_frames  # noqa: E402
from leanood_ros.evaluation.metrics import alarm_metrics, run_sequence  # noqa: E402
from leanood_ros.evaluation.recording_sets import resolve_dataset  # noqa: E402
from leanood_ros.evaluation.tune import tune_decision  # noqa: E402
from leanood_ros.parameters import DECISION_KEYS  # noqa: E402

DATASET = REPO / 'data' / 'newcam' / 'bags'
WORK = REPO / 'runs' / 'bench_adapt'
BUNDLES = ('earlin_lite0', 'vae_lean', 'vae_student64_fp32', 'vae_baseline')
# (label, p_tail, margin, subtle_weight); the first is the tuning before this study
VARIANTS = (('before: conformal, margin 1.5, clear shift only', 'conformal', 1.5, 0.0),
            ('exponential tail, margin 1.5, clear only', 'exponential', 1.5, 0.0),
            ('exponential, margin 1.5, + 0.1 x subtle', 'exponential', 1.5, 0.1),
            ('**exponential, margin 2.0, + 0.1 x subtle (adapt now)**', 'exponential', 2.0, 0.1),
            ('exponential, margin 2.0, clear only', 'exponential', 2.0, 0.0),
            ('exponential, margin 2.0, + 1 x subtle', 'exponential', 2.0, 1.0),
            ('exponential, margin 2.0, + 0.03 x subtle', 'exponential', 2.0, 0.03),
            ('exponential, margin 3.0, + 0.1 x subtle', 'exponential', 3.0, 0.1))


def scores(det, pre, paths, labelled=False):
    out = []
    for p in paths:
        fs = load_frames([p], pre, progress=False)
        s = np.asarray(det.predict_resized(fs.images), np.float64)
        out.append((s, fs.is_ood if labelled else np.zeros(len(s), bool)))
    return out


def judge(cal, cfg, normal, shifted) -> str:
    fa = [alarm_metrics(run_sequence(s, cal, cfg)[0], o) for s, o in normal]
    det = [alarm_metrics(run_sequence(s, cal, cfg)[0], o) for s, o in shifted]
    delays = [m['delay'] for m in det if m['detected']]
    alarmed = sum(bool(m['false_alarm_episodes']) for m in fa)
    return (f'{alarmed}/{len(fa)} | {len(delays)}/{len(det)} | '
            f'{np.mean(delays):.2f} / {max(delays)}')


def main() -> int:
    sets = resolve_dataset(DATASET, 'test')
    print('# Decision tuning after `leanood adapt`: which tail, margin and objective\n')
    print(__doc__.split('\n\n')[3].replace('\n', ' ') + '\n')
    print('Produced by `tools/experiments/decision_tail.py` on the adapted bundles of '
          '`leanood bench adapt`.  Columns: normal test routes with an alarm, shifted routes '
          'flagged, delay mean / max (frames).\n')
    for name in BUNDLES:
        path = WORK / f'{name}_adapted'
        if not (path / 'bundle.json').is_file():
            continue
        b = load_bundle(path)
        det = build_detector(b, threads=2)
        parts = [s for s, _ in scores(det, b.preprocessing, sets['calib'])]
        loo = [np.concatenate(parts[:i] + parts[i + 1:]) for i in range(len(parts))]
        normal = scores(det, b.preprocessing, sets['id'])
        shifted = scores(det, b.preprocessing, sets['ood'], labelled=True)
        print(f'## {name}\n\n| tuning | normal with an alarm | shifted flagged | delay |\n'
              '|---|---|---|---|')
        for label, tail, margin, weight in VARIANTS:
            d = tune_decision(b.calibration_scores, parts, margin=margin, p_tail=tail,
                              subtle_weight=weight, sequence_calibrations=loo)
            cfg = DecisionConfig(**{k: d[k] for k in DECISION_KEYS if k in d})
            print(f'| {label} | {judge(b.calibration_scores, cfg, normal, shifted)} |')
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
