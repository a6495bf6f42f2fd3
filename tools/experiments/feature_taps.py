"""Which encoder blocks a VAE bundle's `features` should summarise (its feature taps).

    .venv/bin/python tools/experiments/feature_taps.py > benchmarks/adapt/TAPS.md
    .venv/bin/python tools/experiments/feature_taps.py vae_baseline 0 0,1 \
        >> benchmarks/adapt/TAPS.md

The Gaussian head of a VAE bundle scores the per-channel mean and standard deviation of tapped
encoder blocks.  With block 0 only, `leanood adapt` on the new-camera benchmark left motion blur
13-17 frames late.  The weights stay; only the tapped blocks vary.  Chosen on validation data,
confirmed on the benchmark (a test set, so it does not choose):

1. validation, adapt protocol: on the two held-out places (data/heldout, maps outside fitting and
   calibration), pool-fit on drive 0, calibrate on drive 1, tune as adapt does (each calibration
   drive judged against the other), judge drive 2 as it is and with every shift from frame 45 on
   (data/shifts.py, 3 seeds each);
2. validation split, out of the box: per-frame AUROC per shift (head fitted on the training split);
3. the new-camera benchmark after adapt, as `leanood bench adapt` runs it (confirmation only).
"""
import json
from pathlib import Path
import sys

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from leanood_ros.bundle import load_bundle  # noqa: E402
from leanood_ros.data.recordings import open_recording  # noqa: E402
from leanood_ros.data.shifts import Shift, SHIFTS  # noqa: E402
from leanood_ros.decision import DecisionConfig  # noqa: E402
from leanood_ros.evaluation.frames import load_frames  # noqa: E402
from leanood_ros.evaluation.metrics import alarm_metrics, run_sequence  # noqa: E402
from leanood_ros.evaluation.recording_sets import resolve_dataset  # noqa: E402
from leanood_ros.evaluation.tune import tune_decision  # noqa: E402
from leanood_ros.heads import Whitener  # noqa: E402
from leanood_ros.image_conversion import from_array, to_rgb  # noqa: E402
from leanood_ros.parameters import DECISION_KEYS  # noqa: E402

DATASET = REPO / 'data' / 'duckietown' / 'bags'
HELDOUT = REPO / 'data' / 'heldout' / 'bags'
NEWCAM = REPO / 'data' / 'newcam' / 'bags'
BENCH = REPO / 'benchmarks' / 'adapt' / 'results.json'   # the benchmark's fit/calib/test routes
CANDIDATES = ((0,), (0, 1), (1,), (0, 1, 2), (0, 1, 2, 3))
ONSET = 45
SEEDS = 3          # shifted copies of each held-out drive per shift (other random parameters)


def tuned(parts, loo):
    """Decision settings as `leanood adapt` tunes them (leave-one-recording-out)."""
    cal = np.concatenate(parts)
    d = tune_decision(cal, parts, margin=2.0, p_tail='exponential', subtle_weight=0.1,
                      sequence_calibrations=loo)
    return cal, DecisionConfig(**{k: d[k] for k in DECISION_KEYS if k in d})


def judge(cal, cfg, normal, shifted):
    fa = [alarm_metrics(run_sequence(s, cal, cfg)[0], np.zeros(len(s), bool)) for s in normal]
    det = [alarm_metrics(run_sequence(s, cal, cfg)[0], o) for s, o in shifted]
    delays = [m['delay'] for m in det if m['detected']]
    return {'alarmed': f"{sum(bool(m['false_alarm_episodes']) for m in fa)}/{len(fa)}",
            'flagged': f'{len(delays)}/{len(det)}',
            'delay': f'{np.mean(delays):.2f} / {max(delays)}' if delays else '-',
            'per': [m['delay'] if m['detected'] else None for m in det]}


def main(argv) -> int:
    import torch
    from sklearn.metrics import roc_auc_score
    from leanood_ros.training.architectures import bundle_encoder
    from leanood_ros.training.compress import latent_targets
    torch.set_num_threads(2)
    name = argv[0] if argv else 'vae_lean'
    candidates = [tuple(int(t) for t in c.split(',')) for c in argv[1:]] or CANDIDATES
    src = load_bundle(REPO / 'models' / name)
    pre = src.preprocessing
    val = resolve_dataset(DATASET, 'val')
    places = sorted({p.name.rsplit('_', 1)[0] for p in HELDOUT.iterdir() if p.is_dir()})

    def raw(path):
        with open_recording(path) as rec:
            return [to_rgb(f.image) for f in rec]
    drives = {(pl, i): raw(HELDOUT / f'{pl}_{i}') for pl in places for i in range(3)}

    def shifted(frames, shift):       # one pipeline per sequence, as the dataset builder does
        return [shift(f) if i >= ONSET else f for i, f in enumerate(frames)]

    def resized(frames):
        return np.stack([pre.resize(from_array(f)) for f in frames])
    held = {k: resized(v) for k, v in drives.items()}
    synth = [(name, pl, resized(shifted(drives[pl, 2], Shift(name, seed=100 * k + j))))
             for k, name in enumerate(SHIFTS) for pl in places for j in range(SEEDS)]
    bench = json.loads(BENCH.read_text())
    nc = {role: [load_frames([NEWCAM / n], pre, progress=False) for n in bench[role]]
          for role in ('fit', 'calib', 'normal', 'shifted')}
    prior_frames = load_frames(val['fit'], pre, stride=3, progress=False).images
    rows = []
    for taps in candidates:
        enc = bundle_encoder(src, taps)

        def feats(images):
            return latent_targets(enc, images, features=True)[2].numpy()
        prior = Whitener.fit(feats(prior_frames))
        # 1. validation: held-out places, adapt protocol, synthetic shifts
        w = prior.pooled(np.concatenate([feats(held[pl, 0]) for pl in places]),
                         len(prior_frames))
        parts = [w.sq_distance(feats(held[pl, 1])) for pl in places]
        cal, cfg = tuned(parts, [np.concatenate(parts[:i] + parts[i + 1:])
                                 for i in range(len(parts))])
        v1 = judge(cal, cfg, [w.sq_distance(feats(held[pl, 2])) for pl in places],
                   [(w.sq_distance(feats(x)), np.arange(len(x)) >= ONSET) for _, _, x in synth])
        blur = [d for (name, _, _), d in zip(synth, v1['per']) if name == 'blur']
        # 2. validation split, out of the box: per-frame AUROC per shift
        idv = np.concatenate([prior.sq_distance(feats(load_frames([p], pre,
                                                                  progress=False).images))
                              for p in val['id']])
        by = {}
        for p in val['ood']:
            fs = load_frames([p], pre, progress=False)
            kind = next(str(lab) for lab, o in zip(fs.labels, fs.is_ood) if o)
            by.setdefault(kind, []).append(prior.sq_distance(feats(fs.images))[fs.is_ood])
        au = {k: roc_auc_score(np.r_[np.zeros(len(idv)), np.ones(sum(map(len, v)))],
                               np.r_[idv, *v]) for k, v in by.items()}
        # 3. the new-camera benchmark after adapt (confirmation)
        w = prior.pooled(np.concatenate([feats(f.images) for f in nc['fit']]),
                         len(prior_frames))
        parts = [w.sq_distance(feats(f.images)) for f in nc['calib']]
        cal, cfg = tuned(parts, [np.concatenate(parts[:i] + parts[i + 1:])
                                 for i in range(len(parts))])
        v3 = judge(cal, cfg, [w.sq_distance(feats(f.images)) for f in nc['normal']],
                   [(w.sq_distance(feats(f.images)), f.is_ood) for f in nc['shifted']])
        rows.append((taps, feats(prior_frames[:1]).shape[1], v1, blur, au, v3))
        print(f'taps {taps} done', file=sys.stderr, flush=True)
    if name == 'vae_lean':
        print('# Feature taps of the VAE heads: what the second encoder block adds\n')
        print(' '.join(__doc__.split('\n\n')[2].split()) + '\n')
    print(f'## {name}\n')
    print('Produced by `tools/experiments/feature_taps.py` (see its docstring for the three '
          'protocols).  Shifted routes: 42 on validation (7 shifts x 2 held-out places x '
          '3 seeds), 24 on '
          'the benchmark.\n')
    print('| taps | features | 1. validation, held-out places after adapt: normal drives with '
          'an alarm / shifted flagged / delay mean / max | blur delays | 2. validation split '
          'mean AUROC (blur) | 3. new camera after adapt: normal with an alarm / flagged / '
          'delay mean / max |\n|---|---|---|---|---|---|')
    for taps, dims, v1, blur, au, v3 in rows:
        print(f"| {list(taps)} | {dims} | {v1['alarmed']} / {v1['flagged']} / {v1['delay']} | "
              f"{', '.join('missed' if d is None else str(d) for d in blur)} | "
              f"{np.mean(list(au.values())):.4f} ({au['blur']:.4f}) | "
              f"{v3['alarmed']} / {v3['flagged']} / {v3['delay']} |")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
