r"""`leanood adapt`: fit a shipped (or any) bundle to a new robot from its *normal* recordings.

    leanood adapt --model earlin_lite0 --fit my_bags/normal_0 my_bags/normal_1 \
                  --calib my_bags/normal_2 my_bags/normal_3 --out models/earlin_mysite
    leanood adapt --model vae_lean --fit my_bags/normal/ --ood my_bags/rain --out DIR

What changes and what stays:
- the graph stays (nothing is retrained; no torch needed);
- the score head keeps what it knew and learns the new place: a memory-bank head (`wknn`) adds
  the new frames that its memory does not cover yet (greedy k-center coreset, bounded by the
  head's `max_bank`), a Gaussian head pools its statistics with the new frames'; a head with
  nothing to fit (the paper's KL from the prior) is only recalibrated;
- calibration scores come from normal recordings held apart from the fit (`--calib`; without it
  the `--fit` recordings are split by recording), so the p-values describe the new camera;
- decision settings are retuned on normal sequences only (`--id`, else the calibration ones);
- the bundle is named after `--out`; provenance, a before/after table (with `--ood`) and a model
  card travel with it.  An existing `--out` is replaced only if it is a bundle and `--force` is
  set.
`refit` (`leanood refit`) is the same pipeline with the head's statistics replaced instead of
extended (`mode='refit'`), or kept (`mode='recalibrate'`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile

import numpy as np

MODES = ('extend', 'refit', 'recalibrate')
MIN_FIT_FRAMES = 200     # ~2 sequences: fewer leave normal views of the new place uncovered


class AdaptError(ValueError):
    """Input that cannot make a trustworthy bundle; the message says what is needed."""


def check_recordings(fit, calib, ids, ood=()) -> None:
    """Check that recordings used for different purposes are different recordings."""
    named = {'--fit': fit, '--calib': calib, '--id': ids, '--ood': ood}
    seen = {}
    for role, paths in named.items():
        for p in paths:
            key = Path(p).resolve()
            if key in seen and seen[key] != role:
                raise AdaptError(f'{p} is given as both {seen[key]} and {role}: fitting, '
                                 f'calibration and evaluation need recordings held apart')
            seen[key] = role


def split_by_recording(paths) -> tuple:
    """(fit, calib) halves of a recording list, alternating so that both see every place."""
    paths = sorted(Path(p) for p in paths)
    if len(paths) < 2:
        raise AdaptError('without --calib, --fit needs at least 2 recordings (one to fit, one '
                         'to calibrate: calibration frames must not be the fitted ones)')
    return paths[0::2], paths[1::2]


def _id_frames(paths, pre, stride: int, what: str):
    from ..evaluation.frames import load_frames
    frames = load_frames(paths, pre, stride=stride)
    if frames.is_ood.any():
        bad = sorted({lab for lab, o in zip(frames.labels, frames.is_ood) if o})
        raise AdaptError(f'{what} recordings contain frames labelled out of distribution '
                         f'({", ".join(bad)}): adaptation uses normal recordings only')
    return frames


def _min_calibration(bundle) -> int:
    alpha = float((bundle.manifest.get('decision') or {}).get('alpha', 0.01))
    return int(np.ceil(1.0 / alpha))      # the smallest p-value 1/(n+1) must reach alpha


def adapt_bundle(src, out, fit_paths, calib_paths=(), id_paths=(), mode: str = 'extend',
                 fit_stride: int = 1, force: bool = False, max_bank: int | None = None,
                 benign: int = 0, head_type: str | None = None, log=None) -> dict:
    """Adapt `src` to the recordings and save it at `out`; returns a summary.

    `benign` > 0 adds that many benign-camera variants (data/benign.py) of every fit and
    calibration frame, so that another resolution, JPEG quality or white balance is not a false
    alarm by itself.  `head_type` (refit only) replaces the head by a new one of that type reading
    the same graph output (e.g. a `mahalanobis` head by a `wknn` memory bank).
    """
    from ..bundle import ModelBundle, load_bundle, read_verified, save_bundle
    from ..calibration import calibrate, head_inputs
    from ..data.benign import benign_frames
    from ..detectors import build_detector
    from ..evaluation.tune import tune_bundle, tune_decision
    from ..heads import WhitenedKnnHead
    from .export import provenance
    if mode not in MODES:
        raise AdaptError(f'mode must be one of {MODES}')
    log = log or (lambda msg: print(msg, file=sys.stderr))   # stdout stays machine-readable
    bundle = load_bundle(src)
    out = Path(out)
    if out.exists() and not force:     # say so now, not after minutes of work
        raise AdaptError(f'{out} exists: ' + ('pass --force to replace this bundle'
                                              if (out / 'bundle.json').is_file() else
                                              'choose another --out (it is not a bundle and is '
                                              'never deleted)'))
    fit_paths, calib_paths, id_paths = list(fit_paths), list(calib_paths), list(id_paths)
    if not calib_paths:
        fit_paths, calib_paths = split_by_recording(fit_paths)
        log(f'no --calib: fitting on {len(fit_paths)} recordings, calibrating on '
            f'{len(calib_paths)} others ({", ".join(p.name for p in calib_paths)})')
    id_paths = id_paths or calib_paths
    check_recordings(fit_paths if mode != 'recalibrate' else [], calib_paths,
                     [p for p in id_paths if p not in calib_paths])
    head = bundle.head
    if head_type and head_type != head.type:
        if mode != 'refit':
            raise AdaptError('a new head type needs mode refit (leanood refit --head)')
        from ..heads import make_head
        source = head.inputs[0] if head.type in ('mahalanobis', 'wknn') else 'features'
        head = bundle.head = make_head(head_type, source)
        summary_head = f'{bundle.manifest["detector"].get("head", {}).get("type")} -> {head_type}'
    else:
        summary_head = head.type
    if mode == 'refit' and not head.fitted:
        raise AdaptError(f'{bundle.path}: head {head.type} has no fitted statistics to refit '
                         f'(recalibrate it instead: --keep-head)')
    if mode == 'extend' and not head.fitted:
        log(f'head {head.type} has no fitted statistics: recalibrating and retuning only')
        mode = 'recalibrate'
    det = build_detector(bundle, threads=2)
    summary = {'source': bundle.name, 'mode': mode, 'head': summary_head}
    if mode != 'recalibrate':
        fit = _id_frames(fit_paths, bundle.preprocessing, fit_stride, '--fit')
        if len(fit) < MIN_FIT_FRAMES:
            raise AdaptError(f'--fit gave {len(fit)} frames; at least {MIN_FIT_FRAMES} normal '
                             f'frames (about 2 sequences of the new place) are needed so that '
                             f'its normal views are covered')
        images = fit.images
        if benign:
            images = np.concatenate([images, benign_frames(fit_paths, bundle.preprocessing,
                                                           benign, fit_stride, seed=1)])
        x = head_inputs(det, images, progress='head inputs')
        summary['fit_frames'] = len(images)
        if mode == 'refit':
            head.fit(x)
        elif isinstance(head, WhitenedKnnHead):
            if max_bank:
                head.max_bank = max(int(max_bank), len(head.bank))
            before = len(head.bank)
            added = head.extend(x)
            summary.update(bank_before=before, bank_added=added, bank_after=len(head.bank))
            log(f'memory bank: {before} + {added} new vectors = {len(head.bank)} '
                f'(max_bank {head.max_bank})')
        else:
            n_prior = int(bundle.manifest.get('detector', {}).get('fit_frames', 0)) or len(x)
            head.whitener = head.whitener.pooled(x[head.inputs[0]], n_prior)
            summary['pooled_with_prior_frames'] = n_prior
    cal_parts = [_id_frames([p], bundle.preprocessing, 1, '--calib').images
                 for p in calib_paths]         # per recording: for leave-one-out tuning
    n_cal = sum(len(c) for c in cal_parts)
    need = _min_calibration(bundle)
    if n_cal < need:
        raise AdaptError(f'--calib gave {n_cal} frames; the decision alpha needs at least '
                         f'{need} (the smallest conformal p-value is 1/(n+1))')
    extra_cal = benign_frames(calib_paths, bundle.preprocessing, benign, seed=2) if benign \
        else None
    if benign:
        summary['benign_variants'] = benign
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest['name'] = out.name
    prov = dict(manifest.get('provenance', {}))
    prov['adapted'] = provenance(
        f'{mode}: {len(fit_paths) if mode != "recalibrate" else 0} fit and {len(calib_paths)} '
        f'calibration recordings', {'from_bundle': bundle.name,
                                    'fit_recordings': [Path(p).name for p in fit_paths]
                                    if mode != 'recalibrate' else [],
                                    'calib_recordings': [Path(p).name for p in calib_paths],
                                    'id_recordings': [Path(p).name for p in id_paths],
                                    **{k: v for k, v in summary.items() if k.startswith('bank')}})
    manifest['provenance'] = prov
    if mode != 'recalibrate':
        manifest['detector']['fit_frames'] = int(
            manifest['detector'].get('fit_frames', 0)) + summary['fit_frames']
    manifest['detector']['score'] = head.describe() + '; higher = more OOD'
    manifest['metrics'] = {}      # measured again (evaluate --record), never inherited
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for role, g in bundle.graphs.items():   # the verified bytes, unchanged
            spec = manifest['graphs'][role]
            (tmp / spec['file']).write_bytes(g.read())
            if 'torch' in spec:
                (tmp / spec['torch']['file']).write_bytes(read_verified(
                    bundle.path / spec['torch']['file'], spec['torch']['sha256'], 'torch twin'))
        new = ModelBundle.draft(tmp, manifest, head)
        det = build_detector(new, threads=2)
        parts = [det.predict_resized(c) for c in cal_parts]
        extra = [det.predict_resized(extra_cal)] if benign else []
        cal = np.concatenate(parts + extra)
        calibrate(new, None, ', '.join(Path(p).name for p in calib_paths)
                  + (f' (+{benign} benign camera variants each)' if benign else ''),
                  detector=det, scores=cal)
        if id_paths == calib_paths and len(parts) > 1:
            # the only normal sequences are the calibration recordings: judge each against
            # the calibration without itself, as the next recording will be judged
            new.manifest['decision'] = tune_decision(
                new.calibration_scores, parts, sequence_calibrations=[
                    np.concatenate(parts[:i] + parts[i + 1:] + extra)
                    for i in range(len(parts))])
        else:
            tune_bundle(new, id_paths, detector=det)
        save_bundle(new, out, force=force)
    summary.update(out=str(out), calibration_frames=len(cal), decision=new.manifest['decision'],
                   calib_recordings=[str(p) for p in calib_paths])
    return summary


def before_after(src: str, out: str, id_paths, ood_paths) -> str:
    """Write the table a user reads after adapting: the source bundle beside the adapted one."""
    from ..evaluation.evaluate import evaluate_bundle
    rows = []
    for label, model in (('before', src), ('after', out)):
        r = evaluate_bundle(model, id_paths, ood_paths)
        seqs = [m for s in r['per_set'].values() for m in s['per_sequence'].values()]
        delays = [m['delay'] for m in seqs if m.get('delay') is not None]
        rows.append((label, r['name'], r['mean_auroc'], r['min_auroc'], r['mean_fpr95'],
                     sum(m.get('detected', False) for m in seqs), len(seqs),
                     float(np.mean(delays)) if delays else float('nan'),
                     r['id_false_alarm_episodes'], r['id_false_alarm_frames'],
                     sum(1 for m in r['id_sequences'].values() if m['false_alarm_episodes'])))
    lines = ['| | bundle | mean AUROC | min AUROC | mean FPR95 | shifted flagged | mean delay '
             '| ID false-alarm episodes | ID false-alarm frames | ID sequences with an alarm |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for (label, name, mean, low, fpr, det, n, delay, ep, fr, seq_fa) in rows:
        lines.append(f'| {label} | {name} | {mean:.4f} | {low:.4f} | {fpr:.4f} | {det}/{n} | '
                     f'{delay:.2f} | {ep} | {fr} | {seq_fa}/{len(id_paths)} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    from ..bundle import BundleError, resolve_bundle_path
    from ..evaluation.recording_sets import add_recording_args, recording_sets
    ap = argparse.ArgumentParser(prog='leanood adapt', description=__doc__.splitlines()[0],
                                 epilog='See README "Adapting to your robot".')
    ap.add_argument('--model', required=True, help='source bundle (name under models/ or path)')
    ap.add_argument('--out', type=Path, required=True, help='folder of the adapted bundle')
    add_recording_args(ap)
    ap.add_argument('--fit-stride', type=int, default=1, help='use every k-th fit frame')
    ap.add_argument('--max-bank', type=int, help="memory-bank size limit (default: the head's)")
    ap.add_argument('--benign', type=int, default=0, metavar='N',
                    help='add N benign camera variants (resolution, JPEG quality, exposure, white '
                         'balance) of every fit and calibration frame')
    ap.add_argument('--force', action='store_true', help='replace an existing bundle at --out')
    a = ap.parse_args(argv)
    sets = recording_sets(a, parser=ap)
    if not sets['fit']:
        ap.error('need --fit: normal recordings of the new robot/place')
    try:
        check_recordings(sets['fit'], sets['calib'], sets['id'], sets['ood'])
        src = str(resolve_bundle_path(a.model))
        s = adapt_bundle(src, a.out, sets['fit'], sets['calib'], sets['id'],
                         fit_stride=a.fit_stride, force=a.force, max_bank=a.max_bank,
                         benign=a.benign)
        print(json.dumps(s, indent=1))
        if sets['ood']:
            ids = sets['id'] or s['calib_recordings']
            if not sets['id']:
                print('(no --id: normal sequences judged = the calibration recordings; give '
                      'held-out ones with --id for an unbiased false-alarm count)')
            print(before_after(src, str(a.out), ids, sets['ood']))
    except (AdaptError, BundleError, FileNotFoundError) as exc:
        print(f'leanood adapt: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
