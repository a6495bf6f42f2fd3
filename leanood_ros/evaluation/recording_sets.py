"""One way for every tool to take recordings: `--fit/--calib/--id/--ood PATH...`, `--dataset DIR`.

    ap = argparse.ArgumentParser()
    add_recording_args(ap, roles=('fit', 'calib'))
    a = ap.parse_args()
    sets = recording_sets(a, parser=ap)
    # {'fit': [Path], 'calib': [...], 'id': [...], 'ood': [...]}

A PATH is a rosbag2 recording (bag directory, .mcap or .db3 file), an image folder (optional
labels.csv), a video file, or a parent folder of such recordings (expanded one level, sorted).
`--dataset` is a built dataset (`leanood dataset build`, schema in docs/dataset.md); a role given
explicitly wins over the dataset's recordings for that role.  Bad input raises RecordingError
with a one-line message naming the argument and the path (with `parser`, argparse's exit 2).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data.recordings import (IMAGE_SUFFIXES, IN_DISTRIBUTION, open_recording, RecordingError,
                               VIDEO_SUFFIXES)

ROLES = ('fit', 'calib', 'id', 'ood')
ID_ROLES = ('fit', 'calib', 'id')
ROLE_HELP = {
    'fit': 'ID recordings to fit the statistics on',
    'calib': 'ID recordings held out from fitting (calibration scores)',
    'id': 'ID recordings to judge or to tune the decision on (no shift)',
    'ood': 'recordings with a shift (labelled per frame, or wholly OOD when unlabelled)',
}
BAG_SUFFIXES = ('.mcap', '.db3')


def add_recording_args(parser, roles=ROLES) -> None:
    """Add --dataset and one `--<role> PATH...` list per role to an argparse parser."""
    parser.add_argument('--dataset', type=Path, metavar='DIR',
                        help='a built dataset (bags/ with index.json, see docs/dataset.md)')
    for role in roles:
        parser.add_argument(f'--{role}', nargs='+', default=[], metavar='PATH',
                            help=f'{ROLE_HELP[role]}: bags, image folders, videos or folders '
                                 'of them')


def is_recording(path: Path) -> bool:
    """Tell whether open_recording reads this: a bag, a video, a folder holding images."""
    if path.is_dir():
        return (path / 'metadata.yaml').is_file() or any(
            f.suffix.lower() in IMAGE_SUFFIXES for f in path.iterdir() if f.is_file())
    return path.suffix.lower() in BAG_SUFFIXES + VIDEO_SUFFIXES


def expand(paths, role: str = 'recordings', check: bool = True) -> list:
    """Return recording paths from the given paths; a non-recording folder is expanded one level.

    check: open every recording once (check_recording) so that a broken or mislabelled one fails
    now, not half-way through a long run.
    """
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise RecordingError(f'--{role} {p}: no such file or folder')
        if is_recording(p):
            found = [p]
        elif p.is_dir():
            found = sorted(c for c in p.iterdir()
                           if not c.name.startswith('.') and is_recording(c))
            if not found:
                raise RecordingError(
                    f'--{role} {p}: no recordings in this folder (rosbag2 bags, image folders, '
                    f'videos {"/".join(VIDEO_SUFFIXES)})')
        else:
            raise RecordingError(f'--{role} {p}: not a recording (a rosbag2 bag or .mcap/.db3, '
                                 f'an image folder or a video {"/".join(VIDEO_SUFFIXES)})')
        for f in found:
            if check:
                try:
                    with open_recording(f) as rec:
                        check_recording(rec, role)
                except RecordingError as exc:
                    raise RecordingError(f'--{role} {exc}') from exc
        out += found
    return out


def check_recording(rec, role: str) -> None:
    """Check that a recording fits its role.

    It has frames; ID roles hold no frame labelled OOD; a labelled --ood recording has at least
    one OOD frame.
    """
    if len(rec) == 0:
        raise RecordingError(f'{rec.path}: recording has no frames')
    labels = rec.label_counts()
    shifted = {k: n for k, n in labels.items() if k != IN_DISTRIBUTION}
    if role in ID_ROLES and shifted:
        raise RecordingError(
            f'{rec.path}: {sum(shifted.values())} frames are labelled OOD '
            f'({", ".join(sorted(shifted))}); --{role} takes normal recordings only '
            '(give it to --ood)')
    if role == 'ood' and labels and not shifted:
        raise RecordingError(f'{rec.path}: every labelled frame is in_distribution; '
                             'a normal recording belongs to --id')


def resolve_dataset(root, split: str = 'val') -> dict:
    """Take the four roles from a built dataset.

    fit = train ID recordings; calib = the calib split plus the held-out-map ID recordings of val
    (a new place among the calibration scores keeps a new map from being a false alarm); id / ood
    = the split's ID / shifted recordings.
    """
    from .frames import dataset_recordings
    root = Path(root)
    if not (root / 'index.json').is_file():
        raise RecordingError(f'--dataset {root}: no index.json (build one with '
                             '`leanood dataset build`, see docs/dataset.md)')
    index = json.loads((root / 'index.json').read_text())
    splits = sorted({info['split'] for info in index.values()})
    if split not in splits:
        raise RecordingError(f'--dataset {root}: no split {split!r} (splits: {", ".join(splits)})')
    missing = [rel for rel in sorted(index) if not (root / rel).exists()]
    if missing:
        raise RecordingError(f'--dataset {root}: index.json lists {len(missing)} recordings that '
                             f'are not there ({missing[0]}, ...): rebuild it')
    pure = set(dataset_recordings(root, split, shifts=()))
    return {'fit': dataset_recordings(root, 'train', roles=('id',), shifts=()),
            'calib': dataset_recordings(root, 'calib', roles=('id',), shifts=())
            + dataset_recordings(root, 'val', roles=('id_newmap',), shifts=()),
            'id': dataset_recordings(root, split, roles=('id', 'id_newmap'), shifts=()),
            'ood': [p for p in dataset_recordings(root, split) if p not in pure]}


def recording_sets(args, parser=None, split: str | None = None, check: bool = True) -> dict:
    """Map {'fit', 'calib', 'id', 'ood'} -> recording paths from parsed arguments.

    Explicit lists win per role over --dataset (whose split is `split`, else args.split, else
    'val').
    """
    try:
        sets = {r: expand(getattr(args, r, None) or [], r, check) for r in ROLES}
        if getattr(args, 'dataset', None):
            split = split or getattr(args, 'split', None) or 'val'
            for role, paths in resolve_dataset(args.dataset, split).items():
                sets[role] = sets[role] or paths
    except (RecordingError, json.JSONDecodeError, KeyError) as exc:
        if parser is None:
            raise
        parser.error(str(exc) if isinstance(exc, RecordingError)
                     else f'--dataset {args.dataset}: index.json is not a dataset index ({exc})')
    return sets


def require(parser, sets: dict, *roles: str, why: str = '') -> None:
    """parser.error unless every named role has recordings."""
    missing = [r for r in roles if not sets[r]]
    if missing:
        parser.error('need ' + ' and '.join(f'--{r}' for r in missing)
                     + ' recordings (or --dataset)' + (f' {why}' if why else ''))
