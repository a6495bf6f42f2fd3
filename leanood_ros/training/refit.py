r"""`leanood refit`: refit a bundle's ID statistics on new ID recordings; nothing is retrained.

The bundle is then recalibrated and retuned.

    leanood refit --model vae_lean --dataset data/duckietown/bags --out runs/vae_lean_refit
    leanood refit --model vae_lean --fit my_bags/train/* --calib my_bags/calib/* \
                  --id my_bags/val/* --out models/vae_lean_mysite
    leanood refit --model earlin_lite0 --keep-head --dataset data/duckietown/bags --out OUT

The graph stays, the ID statistics the score measures against are *replaced* by ones fitted on
the user's own ID recordings, and the calibration scores and decision settings are re-derived
(never from OOD data).  Works for every fitted head (`wknn`, `mahalanobis`, `kl_to_fitted`),
EARLIN's included; `--keep-head` keeps the statistics and only recalibrates and retunes (any
bundle).  To keep what the bundle knew and add the new place, use `leanood adapt` instead: with
only a few sequences of the new place, replacing the statistics forgets more than it learns.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys


def refit(src: Path, out: Path, fit_paths, calib_paths, id_paths, fit_stride: int = 1,
          keep_head: bool = False, force: bool = False, head: str | None = None) -> dict:
    """Replace the head's ID statistics by ones fitted on `fit_paths` (or keep them).

    Then recalibrate and retune: `leanood adapt`'s pipeline with mode refit / recalibrate.
    """
    from .adapt import adapt_bundle
    summary = adapt_bundle(src, out, fit_paths, calib_paths, id_paths,
                           mode='recalibrate' if keep_head else 'refit', fit_stride=fit_stride,
                           force=force, head_type=head)
    return summary['decision']


def main(argv=None) -> int:
    from ..evaluation.recording_sets import add_recording_args, recording_sets, require
    ap = argparse.ArgumentParser(prog='leanood refit', description=__doc__.splitlines()[0])
    ap.add_argument('--model', required=True, help='source bundle (name under models/ or path)')
    ap.add_argument('--out', type=Path, required=True, help='folder for the refitted bundle')
    add_recording_args(ap, roles=('fit', 'calib', 'id'))
    ap.add_argument('--fit-stride', type=int, default=1, help='use every k-th fit frame')
    ap.add_argument('--force', action='store_true', help='replace an existing bundle at --out')
    ap.add_argument('--head', choices=('mahalanobis', 'wknn', 'kl_to_fitted'),
                    help='replace the score head by one of this type (fitted on --fit)')
    ap.add_argument('--keep-head', action='store_true',
                    help='keep the statistics; only recalibrate and retune (needs no --fit)')
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap, split='val')
    require(ap, sets, *(('calib', 'id') if a.keep_head else ('fit', 'calib', 'id')))
    fit, calib, ids = sets['fit'], sets['calib'], sets['id']
    from ..bundle import resolve_bundle_path
    decision = refit(resolve_bundle_path(a.model), a.out, fit, calib, ids, a.fit_stride,
                     a.keep_head, a.force, a.head)
    print(json.dumps({'bundle': str(a.out), 'decision': decision}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
