"""Recordings -> arrays of frames resized exactly as a bundle's preprocessing does, cached on disk.

Training, calibration and evaluation all read frames through `load_frames`, so every model is
fitted and judged on frames prepared by the same code the node runs (`Preprocessing.resize`).  The
cache (`.npy` + `.json`, no pickle) is keyed by the recording's path, size and mtime and the
preprocessing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..data.recordings import IN_DISTRIBUTION, open_recording
from ..preprocess import Preprocessing

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get('LEANOOD_CACHE', REPO / 'data' / 'cache'))


@dataclass
class FrameSet:
    images: np.ndarray                 # N x H x W x 3 uint8, model colour order
    labels: list                       # per frame: None, 'in_distribution' or a shift name
    sequence: np.ndarray               # per frame: index into `names`
    names: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def is_ood(self) -> np.ndarray:
        return np.array([lab is not None and lab != IN_DISTRIBUTION for lab in self.labels])

    def subset(self, mask) -> 'FrameSet':
        idx = np.flatnonzero(mask)
        return FrameSet(self.images[idx], [self.labels[i] for i in idx], self.sequence[idx],
                        self.names)

    @staticmethod
    def concat(sets) -> 'FrameSet':
        sets = [s for s in sets if len(s)]
        names, seqs = [], []
        for s in sets:
            seqs.append(s.sequence + len(names))
            names += s.names
        return FrameSet(np.concatenate([s.images for s in sets]),
                        [lab for s in sets for lab in s.labels], np.concatenate(seqs), names)


def _key(path: Path, pre: Preprocessing, stride: int) -> str:
    st = path.stat()
    files = sorted(path.rglob('*')) if path.is_dir() else [path]
    sig = [(str(f.relative_to(path) if path.is_dir() else f.name), f.stat().st_size,
            int(f.stat().st_mtime)) for f in files if f.is_file()]
    blob = json.dumps([str(path.resolve()), int(st.st_mtime), sig, pre.to_dict(), stride])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_recording(path, pre: Preprocessing, stride: int = 1, cache: bool = True) -> FrameSet:
    path = Path(path)
    key = _key(path, pre, stride)
    npy, meta = CACHE / f'{key}.npy', CACHE / f'{key}.json'
    if cache and npy.is_file() and meta.is_file():
        m = json.loads(meta.read_text())
        images = np.load(npy, allow_pickle=False)
        return FrameSet(images, m['labels'], np.zeros(len(images), np.int64), [m['name']])
    images, labels = [], []
    with open_recording(path) as rec:
        for i, frame in enumerate(rec):
            if i % stride:
                continue
            images.append(pre.resize(frame.image))
            labels.append(frame.label)
    arr = np.stack(images) if images else np.zeros((0, pre.height, pre.width, 3), np.uint8)
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(npy, arr, allow_pickle=False)
        meta.write_text(json.dumps({'name': path.name, 'source': str(path), 'labels': labels}))
    return FrameSet(arr, labels, np.zeros(len(arr), np.int64), [path.name])


def load_frames(paths, pre: Preprocessing, stride: int = 1, cache: bool = True,
                progress: bool = True) -> FrameSet:
    paths = [Path(p) for p in paths]
    if progress and len(paths) > 1:
        from tqdm import tqdm
        paths_iter = tqdm(paths, desc='recordings', unit='rec', leave=False)
    else:
        paths_iter = paths
    return FrameSet.concat([load_recording(p, pre, stride, cache) for p in paths_iter])


def dataset_recordings(root, split: str, roles=None, shifts=None, exclude_maps=()) -> list:
    """List the recordings of a built dataset (bags/index.json) filtered by split, role and shift.

    shifts=None: any; shifts=(): only pure ID recordings; otherwise those shift names.
    """
    root = Path(root)
    index = json.loads((root / 'index.json').read_text())
    out = []
    for rel, info in sorted(index.items()):
        if info['split'] != split or (roles and info['role'] not in roles):
            continue
        if shifts is not None and (info['shift'] or None) not in (set(shifts) or {None}):
            continue
        if info.get('map') in exclude_maps:
            continue
        out.append(root / rel)
    return out
