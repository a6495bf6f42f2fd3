r"""`leanood compress`: the design methodology for lean VAE detectors (Bansal et al., extended).

    leanood compress --teacher runs/vae_baseline --dataset data/duckietown/bags \
                     --out runs/compress

1. The trained beta-VAE encoder is the baseline (the paper's configuration).
2. Variants, each step composable:
   - structured pruning with torch-pruning (channels and hidden units really removed; the latent
     heads keep their size), fine-tuned by distillation to the teacher's latent mean/log-variance;
   - knowledge distillation into smaller student encoders, at the teacher's and at smaller input
     resolutions, trained to match the teacher's (mu, logvar) on ID frames;
   - int8 static post-training quantization with ONNX Runtime (QDQ, per-channel weights,
     calibration on ID frames; the score is computed in float outside the graph) and fp16 (for
     GPUs).
3. Every variant is evaluated on the validation recordings (per-frame AUROC and FPR95 per shift,
   detection delay and false alarms through the decision layer), its CPU latency measured side by
   side with all others in one run, its size and MACs counted.
4. The leanest variant (lowest CPU latency) whose mean AUROC is within `--budget` (default 0.02)
   of the baseline is selected.  A markdown report, a Pareto plot (latency vs AUROC) and the
   bundles are written; `--install` copies baseline, selection and kept variants to models/.
Each variant is cached in its own folder, so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
import json
from pathlib import Path
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from .architectures import BASELINE, build_encoder, count_parameters, encoder_from_state
from .train_vae import bf16_supported, vae_preprocessing

STUDENTS = {
    # name: architecture overrides (students resize with INTER_LINEAR: ~10x cheaper than
    # INTER_AREA from 640x480, and it keeps pixel-level evidence such as noise)
    'student112': {'input_size': 112, 'channels': [32, 32, 32, 32], 'fc': [256], 'latent': 30},
    'student64': {'input_size': 64, 'channels': [32, 32, 32, 32], 'fc': [256], 'latent': 30},
    'student64s': {'input_size': 64, 'channels': [16, 16, 16, 16], 'fc': [128], 'latent': 30},
}
STUDENT_INTERPOLATION = 'linear'
PRUNE_RATIOS = (0.5, 0.75, 0.9)
# Score definitions compared on the baseline (see fit_head).
SCORES = ('kl_prior', 'kl_fitted', 'features', 'features_wknn')
# Encoder blocks whose channel statistics make `features`: the second block is what catches
# motion blur once `leanood adapt` pools a new place in (benchmarks/adapt/TAPS.md, chosen on
# validation held-out places; block 0 alone missed blur there).
FEATURE_TAPS = [0, 1]


@dataclass
class Variant:
    name: str
    encoder: torch.nn.Module
    arch: dict
    recipe: list = field(default_factory=list)


# -- training pieces --------------------------------------------------------------------------
def latent_targets(encoder, images: np.ndarray, batch: int = 64, features: bool = False) -> tuple:
    """Compute an encoder's (mu, logvar[, features]) for frames at its input size (fp32)."""
    encoder.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float().div_(255.0)
            outs.append(encoder(x))
    n = 3 if features else 2
    return tuple(torch.cat([o[k] for o in outs]) for k in range(n))


def distill(student, images: np.ndarray, mu_t, lv_t, epochs: int = 30, batch: int = 64,
            lr: float = 2e-3, seed: int = 0, desc: str = 'distill') -> torch.nn.Module:
    """Match the teacher's latent Gaussian: MSE on mu and on logvar (ID frames only)."""
    from tqdm import tqdm
    torch.manual_seed(seed)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    steps = epochs * ((len(images) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    use_bf16 = bf16_supported()
    rng = np.random.default_rng(seed)
    student.train()
    for epoch in tqdm(range(epochs), desc=desc, unit='epoch', leave=False):
        order = rng.permutation(len(images))
        for i in range(0, len(images), batch):
            idx = np.sort(order[i:i + batch])
            x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div_(255.0)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=use_bf16):
                mu, lv = student(x)[:2]
            loss = F.mse_loss(mu.float(), mu_t[idx]) + F.mse_loss(lv.float(), lv_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return student.eval()


def prune(encoder, ratio: float, input_size: int) -> torch.nn.Module:
    """Structured magnitude pruning: channels and hidden units removed, latent heads kept."""
    import copy

    import torch_pruning as tp
    enc = copy.deepcopy(encoder).eval()
    ex = torch.zeros(1, 3, input_size, input_size)
    pruner = tp.pruner.MagnitudePruner(enc, ex, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=ratio, ignored_layers=[enc.mu, enc.logvar])
    pruner.step()
    return enc


def pruned_arch(enc, arch: dict) -> dict:
    return dict(arch, channels=[enc.features[i][0].out_channels for i in range(len(enc.features))],
                fc=[enc.fc[2 * i].out_features for i in range(len(arch['fc']))])


# -- scoring heads ----------------------------------------------------------------------------
def fit_head(kind: str, mu: np.ndarray, features: np.ndarray | None = None):
    """Score head, fitted on ID training frames only.

    kl_prior:        the paper's KL of the latent Gaussian from the prior N(0, I);
    kl_fitted:       KL of the latent Gaussian from the ID aggregate posterior N(m, S)
                     (Ledoit-Wolf);
    features:        Gaussian divergence of the channel statistics of the encoder's first blocks
                     (FEATURE_TAPS; measured on the baseline: adding the latent mean to them lowers
                     AUROC, blur most);
    features_wknn:   the same statistics, whitened, scored by the distance to the nearest ID
                     training vector (memory bank), EARLIN's score.
    """
    from ..heads import GaussianHead, KLPriorHead, KLToFittedHead, WhitenedKnnHead
    if kind == 'kl_prior':
        return KLPriorHead()
    if kind == 'kl_fitted':
        return KLToFittedHead().fit({'mu': mu})
    if kind == 'features':
        return GaussianHead('features').fit({'features': features})
    if kind == 'features_wknn':
        return WhitenedKnnHead('features').fit({'features': features})
    raise ValueError(f'unknown score {kind!r} (one of {SCORES})')


# -- measurement ------------------------------------------------------------------------------
def measure_latencies(graphs: dict, threads: int = 1, rounds: int = 5,
                      per_round: int = 40) -> dict:
    """Measure the median CPU latency (ms, batch 1) of each ONNX graph, side by side.

    The graphs take turns in several rounds so that machine noise hits all of them alike.
    """
    import onnxruntime as ort
    sessions = {}
    for name, (path, size) in graphs.items():
        o = ort.SessionOptions()
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.log_severity_level = 3
        s = ort.InferenceSession(str(path), o, providers=['CPUExecutionProvider'])
        x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        for _ in range(10):
            s.run(None, {'image': x})
        sessions[name] = (s, x)
    times = {n: [] for n in sessions}
    for _ in range(rounds):
        for name, (s, x) in sessions.items():
            for _ in range(per_round):
                t = time.perf_counter()
                s.run(None, {'image': x})
                times[name].append((time.perf_counter() - t) * 1e3)
    return {n: {'p50_ms': float(np.percentile(t, 50)), 'p99_ms': float(np.percentile(t, 99))}
            for n, t in times.items()}


# -- the methodology --------------------------------------------------------------------------
def run(teacher_dir: Path, sets: dict, out: Path, budget: float = 0.02, threads: int = 1,
        distill_epochs: int = 30, finetune_epochs: int = 8, stride_eval: int = 2,
        score: str = 'auto', fit_stride: int = 3) -> dict:
    from safetensors.torch import load_file
    from ..evaluation.evaluate import evaluate_bundle
    from ..evaluation.frames import load_frames
    from ..evaluation.graph_stats import graph_macs
    from ..bundle import load_bundle
    from .export import convert_fp16, provenance, quantize_int8, vae_bundle
    torch.set_num_threads(threads if threads > 1 else 2)
    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((teacher_dir / 'config.json').read_text())
    teacher = encoder_from_state(cfg['arch'], load_file(str(teacher_dir / 'encoder.safetensors')))
    t_size = cfg['arch']['input_size']
    cal_paths = sets['calib']

    def frames(paths, size, stride=1, interpolation='area'):
        return load_frames(paths, vae_preprocessing(size, interpolation), stride=stride)

    # consecutive frames at 15 fps are near-duplicates: every `fit_stride`-th is plenty
    train_t = frames(sets['fit'], t_size, stride=fit_stride).images
    mu_t, lv_t = latent_targets(teacher, train_t)
    taps = {'feature_taps': FEATURE_TAPS}
    # the candidates: (variant, preprocessing interpolation)
    variants = [(Variant('baseline', teacher, dict(cfg['arch'], **taps),
                         ['paper configuration']), 'area')]
    for r in PRUNE_RATIOS:
        name = f'pruned{int(r * 100)}'
        ckpt = out / 'weights' / f'{name}.safetensors'
        enc = prune(teacher, r, t_size)
        arch = dict(pruned_arch(enc, cfg['arch']), **taps)
        if ckpt.is_file():
            enc = encoder_from_state(arch, load_file(str(ckpt)))
        else:
            enc = distill(enc, train_t, mu_t, lv_t, epochs=finetune_epochs, lr=5e-4,
                          desc=f'fine-tune {name}')
            _save(enc, ckpt)
        variants.append((Variant(name, enc, arch,
                                 [f'prune {int(r * 100)} % channels',
                                  f'fine-tune {finetune_epochs} epochs']), 'area'))
    for name, arch_over in STUDENTS.items():
        arch = dict(BASELINE, **arch_over, **taps)
        ckpt = out / 'weights' / f'{name}.safetensors'
        if ckpt.is_file():
            enc = encoder_from_state(arch, load_file(str(ckpt)))
        else:
            imgs = frames(sets['fit'], arch['input_size'], stride=fit_stride,
                          interpolation=STUDENT_INTERPOLATION).images
            enc = distill(build_encoder(arch), imgs, mu_t, lv_t, epochs=distill_epochs,
                          desc=f'distill {name}')
            _save(enc, ckpt)
        variants.append((Variant(name, enc, arch, [
            f'distill into conv {arch["channels"]}, fc {arch["fc"]}, {arch["input_size"]} px '
            f'({STUDENT_INTERPOLATION} resize)']), STUDENT_INTERPOLATION))
    # score definition, chosen on the baseline (then the same for every variant)
    rows, graphs = [], {}
    choice = score
    scores_on_baseline = {}
    for v, interp in variants:
        v.encoder.feature_taps = tuple(FEATURE_TAPS)
        size = v.arch['input_size']
        pre = vae_preprocessing(size, interp)
        cal = frames(cal_paths, size, interpolation=interp).images
        fit_mu, _, fit_feat = (t.numpy() for t in latent_targets(
            v.encoder, frames(sets['fit'], size, stride=fit_stride, interpolation=interp).images,
            features=True))
        kinds = SCORES if (v.name == 'baseline' and choice == 'auto') else (choice,)
        results = {}
        prov = provenance(f'{len(sets["fit"])} ID training recordings', {'recipe': v.recipe})
        for kind in kinds:
            bdir = out / 'bundles' / f'{v.name}_fp32_{kind}'
            if not (bdir / 'eval.json').is_file():
                vae_bundle(bdir, f'vae_{v.name}', v.encoder, v.arch, pre, cal,
                           ', '.join(p.name for p in cal_paths),
                           head=fit_head(kind, fit_mu, fit_feat),
                           description=f'beta-VAE encoder ({v.name}), fp32', prov=prov,
                           id_paths=sets['id'], fit_frames=len(fit_feat))
                ev = evaluate_bundle(str(bdir), sets['id'], sets['ood'], stride=stride_eval)
                (bdir / 'eval.json').write_text(json.dumps(ev, default=str))
            results[kind] = json.loads((bdir / 'eval.json').read_text())
        if choice == 'auto':
            scores_on_baseline = {k: {'mean_auroc': r['mean_auroc'], 'min_auroc': r['min_auroc'],
                                      'per_shift': {s: m['auroc'] for s, m in
                                                    r['per_set'].items()}}
                                  for k, r in results.items()}
            choice = max(results, key=lambda k: results[k]['mean_auroc'])
        src = out / 'bundles' / f'{v.name}_fp32_{choice}'
        head = load_bundle(src).head
        for quant in ('fp32', 'int8'):
            bdir = out / 'bundles' / f'{v.name}_{quant}_{choice}'
            if quant == 'int8' and not (bdir / 'eval.json').is_file():
                q = quantize_int8(src / 'encoder.onnx', out / f'{v.name}.int8.onnx',
                                  frames(sets['fit'], size, stride=10,
                                         interpolation=interp).images, pre)
                vae_bundle(bdir, f'vae_{v.name}_int8', v.encoder, v.arch, pre, cal,
                           ', '.join(p.name for p in cal_paths), onnx_file=q, head=head,
                           description=f'beta-VAE encoder ({v.name}), int8 static PTQ (QDQ)',
                           prov=provenance(f'{len(sets["fit"])} ID training recordings',
                                           {'recipe': v.recipe + ['int8 static PTQ, QDQ, '
                                                                  'per-channel']}),
                           id_paths=sets['id'])
                ev = evaluate_bundle(str(bdir), sets['id'], sets['ood'], stride=stride_eval)
                (bdir / 'eval.json').write_text(json.dumps(ev, default=str))
            if quant == 'fp32' and not (bdir.parent / f'{v.name}_fp16.onnx').is_file():
                convert_fp16(bdir / 'encoder.onnx', bdir.parent / f'{v.name}_fp16.onnx')
            ev = json.loads((bdir / 'eval.json').read_text())
            graph = bdir / 'encoder.onnx'
            graphs[f'{v.name}_{quant}'] = (graph, size)
            rows.append({'variant': f'{v.name}_{quant}', 'base': v.name, 'quant': quant,
                         'bundle': str(bdir), 'recipe': v.recipe + ([] if quant == 'fp32'
                                                                    else ['int8']),
                         'input_size': size, 'interpolation': interp,
                         'params': count_parameters(v.encoder),
                         'size_bytes': graph.stat().st_size, 'macs': graph_macs(graph),
                         'mean_auroc': ev['mean_auroc'], 'min_auroc': ev['min_auroc'],
                         'mean_fpr95': ev['mean_fpr95'],
                         'per_shift': {k: m['auroc'] for k, m in ev['per_set'].items()},
                         'delay_mean': _mean([m['delay_mean'] for m in ev['per_set'].values()]),
                         'id_false_alarms': ev['id_false_alarm_episodes']})
    lat = measure_latencies(graphs, threads=1)
    for r in rows:
        r.update(latency_ms=lat[r['variant']]['p50_ms'],
                 latency_p99_ms=lat[r['variant']]['p99_ms'])
    base = next(r for r in rows if r['variant'] == 'baseline_fp32')
    for r in rows:
        r['speedup'] = base['latency_ms'] / r['latency_ms']
        r['size_ratio'] = r['size_bytes'] / base['size_bytes']
        r['eligible'] = r['mean_auroc'] >= base['mean_auroc'] - budget
    chosen = min((r for r in rows if r['eligible']), key=lambda r: r['latency_ms'])
    report = {'score': choice, 'scores_on_baseline': scores_on_baseline, 'budget': budget,
              'baseline': base['variant'],
              'selected': chosen['variant'], 'rows': rows, 'latency_threads': 1,
              'machine': provenance('')['machine']}
    (out / 'report.json').write_text(json.dumps(report, indent=1))
    write_report(report, out)
    return report


def _save(enc, path: Path) -> None:
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(path))


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def write_report(report: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = sorted(report['rows'], key=lambda r: r['latency_ms'])
    shifts = sorted({s for r in rows for s in r['per_shift']})
    lines = ['# VAE compression report', '',
             f"Score: `{report['score']}`. Selection: the lowest CPU latency (1 thread, batch 1, "
             f"ONNX Runtime, measured side by side in one run on {report['machine']}) among "
             f"variants whose mean validation AUROC is within {report['budget']} of "
             f"`{report['baseline']}`: **{report['selected']}**.", '',
             '| variant | recipe | input | params | graph size (ratio) | MACs | latency p50 ms '
             '(speed-up) | mean AUROC | min AUROC | mean FPR95 | delay (frames) | ID false alarms '
             '| eligible |', '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        name = f"**{r['variant']}**" if r['variant'] == report['selected'] else r['variant']
        delay = '-' if r['delay_mean'] is None else f"{r['delay_mean']:.1f}"
        lines.append(
            f"| {name} | {'; '.join(r['recipe'])} | {r['input_size']} | {r['params']:,} | "
            f"{r['size_bytes'] / 1e6:.2f} MB ({r['size_ratio']:.3f}) | {r['macs'] / 1e6:.1f} M | "
            f"{r['latency_ms']:.2f} ({r['speedup']:.1f}x) | {r['mean_auroc']:.4f} | "
            f"{r['min_auroc']:.4f} | {r['mean_fpr95']:.3f} | {delay} | {r['id_false_alarms']} | "
            f"{'yes' if r['eligible'] else 'no'} |")
    lines += ['', '## Per-shift validation AUROC', '',
              '| variant | ' + ' | '.join(shifts) + ' |', '|---|' + '---|' * len(shifts)]
    for r in rows:
        lines.append(f"| {r['variant']} | "
                     + ' | '.join(f"{r['per_shift'].get(s, float('nan')):.4f}" for s in shifts)
                     + ' |')
    (out / 'report.md').write_text('\n'.join(lines) + '\n')
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for quant, marker in (('fp32', 'o'), ('int8', 's')):
        pts = [r for r in rows if r['quant'] == quant]
        ax.scatter([r['latency_ms'] for r in pts], [r['mean_auroc'] for r in pts], marker=marker,
                   label=quant)
        for r in pts:
            ax.annotate(r['base'], (r['latency_ms'], r['mean_auroc']), fontsize=7)
    base = next(r for r in rows if r['variant'] == report['baseline'])
    ax.axhline(base['mean_auroc'] - report['budget'], ls=':', c='gray', label='AUROC budget')
    sel = next(r for r in rows if r['variant'] == report['selected'])
    ax.scatter([sel['latency_ms']], [sel['mean_auroc']], s=160, facecolors='none',
               edgecolors='red', label='selected')
    ax.set_xscale('log')
    ax.set_xlabel('CPU latency per frame, ms (1 thread, log scale)')
    ax.set_ylabel('mean validation AUROC')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / 'pareto.png', dpi=120)


def install(report: dict, models: Path, keep=()) -> None:
    """Copy the baseline, the selection (as vae_lean) and kept variants into models/."""
    from ..bundle import load_bundle, save_bundle
    rows = {r['variant']: r for r in report['rows']}
    targets = {'vae_baseline': report['baseline'], 'vae_lean': report['selected']}
    targets.update({f'vae_{k}': k for k in keep})
    for name, variant in targets.items():
        bundle = load_bundle(rows[variant]['bundle'])
        bundle.manifest['name'] = name
        r = rows[variant]
        bundle.manifest['metrics'] = {
            'validation': {k: r[k] for k in ('mean_auroc', 'min_auroc', 'mean_fpr95',
                                             'per_shift', 'delay_mean', 'id_false_alarms')},
            'latency_ms_cpu_1thread': r['latency_ms'], 'speedup_vs_baseline': r['speedup'],
            'graph_bytes': r['size_bytes'], 'macs': r['macs'], 'params': r['params'],
            'recipe': r['recipe'],
            'selected_by': 'leanood compress' if name == 'vae_lean' else None}
        save_bundle(bundle, models / name, force=True)


def main(argv=None) -> int:
    from ..evaluation.recording_sets import add_recording_args, recording_sets, require
    ap = argparse.ArgumentParser(prog='leanood compress', description=__doc__.splitlines()[0])
    ap.add_argument('--teacher', type=Path, required=True, help='train-vae output folder')
    add_recording_args(ap)
    ap.add_argument('--out', type=Path, default=Path('runs/compress'))
    ap.add_argument('--budget', type=float, default=0.02, help='AUROC points below baseline')
    ap.add_argument('--score', default='auto', choices=('auto',) + SCORES)
    ap.add_argument('--distill-epochs', type=int, default=30)
    ap.add_argument('--finetune-epochs', type=int, default=8)
    ap.add_argument('--fit-stride', type=int, default=3, help='use every k-th training frame')
    ap.add_argument('--eval-stride', type=int, default=2, help='use every k-th validation frame')
    ap.add_argument('--install', type=Path, help='models/ folder to copy the results into')
    ap.add_argument('--keep', default='', help='comma-separated extra variants to install')
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap, split='val')
    require(ap, sets, 'fit', 'calib', 'id', 'ood', why='(ood: to measure each candidate)')
    report = run(a.teacher, sets, a.out, a.budget, distill_epochs=a.distill_epochs,
                 finetune_epochs=a.finetune_epochs, score=a.score, fit_stride=a.fit_stride,
                 stride_eval=a.eval_stride)
    print((a.out / 'report.md').read_text())
    if a.install:
        install(report, a.install, [k for k in a.keep.split(',') if k])
    return 0


if __name__ == '__main__':
    sys.exit(main())
