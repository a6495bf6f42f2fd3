"""`leanood refit`: refit a bundle's ID statistics on new ID recordings, then recalibrate and
retune it, without retraining anything.

    leanood refit --model vae_lean --dataset data/duckietown/bags --out runs/vae_lean_refit
    leanood refit --model vae_lean --fit my_bags/train/* --calib my_bags/calib/* \\
                  --id my_bags/val/* --out models/vae_lean_mysite
    leanood refit --model earlin_lite0 --keep-head --dataset data/duckietown/bags --out OUT

For a new place or new camera: the encoder stays, the ID statistics the score measures against,
the calibration scores and the decision settings are all re-derived from the user's own ID
recordings (never from OOD data).  Works for the fitted heads (`mahalanobis` on a graph output,
`kl_to_fitted`); the graph runs through ONNX Runtime, so torch is not needed.  EARLIN bakes its
statistics into the edge graph: refit it with `leanood earlin export`, or keep its statistics and
only recalibrate and retune (`--keep-head`, any bundle).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

FITTED_HEADS = ('mahalanobis', 'kl_to_fitted')


def fit_gaussian_head(kind: str, x: np.ndarray) -> dict:
    """The fitted part of a head: Ledoit-Wolf mean/covariance of ID vectors (graph outputs)."""
    from sklearn.covariance import LedoitWolf
    lw = LedoitWolf().fit(np.asarray(x, dtype=np.float64))
    fitted_on = f'{len(x)} ID training frames (Ledoit-Wolf)'
    if kind == 'mahalanobis':
        return {'mean': lw.location_.tolist(), 'precision': lw.precision_.tolist(),
                'fitted_on': fitted_on}
    if kind == 'kl_to_fitted':
        cov = lw.covariance_
        return {'mean': lw.location_.tolist(), 'precision': np.linalg.inv(cov).tolist(),
                'logdet': float(np.linalg.slogdet(cov)[1]), 'fitted_on': fitted_on}
    raise ValueError(f'head type {kind!r} has nothing to fit (fitted heads: {FITTED_HEADS})')


def head_inputs(detector, images: np.ndarray, output: str, batch: int = 32) -> np.ndarray:
    """One graph output for many frames already resized to the bundle's input size."""
    return np.concatenate([detector.outputs_resized(images[i:i + batch])[output]
                           for i in range(0, len(images), batch)])


def refit(src: Path, out: Path, fit_paths, calib_paths, id_paths, fit_stride: int = 3,
          keep_head: bool = False) -> dict:
    from ..bundle import load_bundle, write_bundle
    from ..detectors import build_detector
    from ..evaluation.frames import load_frames
    from ..evaluation.tune import retune
    from .export import calibrate, provenance
    bundle = load_bundle(src)
    kind = bundle.head['type']
    if kind not in FITTED_HEADS and not keep_head:
        raise ValueError(f'{bundle.path}: head {kind!r} has no fitted statistics to refit'
                         + (' (EARLIN: use `leanood earlin export`)'
                            if bundle.family == 'earlin' else ''))
    out = Path(out)
    if out.resolve() != bundle.path.resolve():
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(bundle.path, out)
    manifest = json.loads((out / 'bundle.json').read_text())
    prov = dict(manifest.get('provenance', {}))
    if keep_head:
        prov['recalibrated'] = provenance('calibration and decision only; statistics kept')
    else:
        det = build_detector(bundle, threads=2)
        fit = load_frames(fit_paths, bundle.preprocessing, stride=fit_stride)
        x = head_inputs(det, fit.images, bundle.head['input'] if kind == 'mahalanobis' else 'mu')
        manifest['detector']['head'].update(fit_gaussian_head(kind, x))
        prov['refit'] = provenance(f'{len(fit_paths)} ID recordings ({len(x)} frames, stride '
                                   f'{fit_stride})', {'fit_recordings': [Path(p).name
                                                                         for p in fit_paths]})
    manifest['provenance'] = prov
    if not keep_head:
        manifest['metrics'] = {}   # measured again for the refitted head, not inherited
    write_bundle(out, manifest)
    cal = load_frames(calib_paths, bundle.preprocessing)
    calibrate(out, cal.images, ', '.join(Path(p).name for p in calib_paths))
    return retune(out, id_paths)


def main(argv=None) -> int:
    from ..evaluation.recording_sets import add_recording_args, recording_sets, require
    ap = argparse.ArgumentParser(prog='leanood refit', description=__doc__.splitlines()[0])
    ap.add_argument('--model', required=True, help='source bundle (name under models/ or path)')
    ap.add_argument('--out', type=Path, required=True, help='folder for the refitted bundle')
    add_recording_args(ap, roles=('fit', 'calib', 'id'))
    ap.add_argument('--fit-stride', type=int, default=3, help='use every k-th fit frame')
    ap.add_argument('--keep-head', action='store_true',
                    help='keep the statistics; only recalibrate and retune (needs no --fit)')
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap, split='val')
    require(ap, sets, *(('calib', 'id') if a.keep_head else ('fit', 'calib', 'id')))
    fit, calib, ids = sets['fit'], sets['calib'], sets['id']
    from ..bundle import resolve_bundle_path
    decision = refit(resolve_bundle_path(a.model), a.out, fit, calib, ids, a.fit_stride,
                     a.keep_head)
    print(json.dumps({'bundle': str(a.out), 'decision': decision}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
