r"""`leanood dataset`: turn rendered Duckietown sequences into labelled rosbag2 recordings.

Stage 1 (tools/duckietown/render_all.sh, isolated simulator venv) renders lossless PNG sequences
of the Duckiebot driving along the lane.  Stage 2 (this module, main venv) writes them as rosbag2
(mcap) recordings of sensor_msgs/CompressedImage (jpeg, as a Duckiebot camera streams) with
per-frame labels, and derives the shifted sequences:

  bags/train/<seq>                 ID, training maps
  bags/calib/<seq>                 ID, held out for calibration scores
  bags/val|test/<seq>              ID (training maps, and held-out maps: `*_newmap_*`)
  bags/val|test/<shift>__<seq>     first half ID, then <shift> (albumentations) to the end
  bags/val|test/domainrand__<seq>  ID frames of the same map, then domain-randomised renders
  bags/index.json                  every recording: split, role, shift, onset frame, frames
                                   (schema: docs/dataset.md)

    leanood dataset build [--raw data/duckietown/raw] [--out data/duckietown/bags]
    leanood dataset build --plan benchmarks/adapt/plan.json --raw data/newcam/raw \
                          --out data/newcam/bags
                                      # an explicit plan: one recording per entry, bags/<name>
    leanood dataset sample            # the small committed sample recording
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import shutil
import sys
import zlib

import cv2
import numpy as np

from .bag_writer import BagWriter
from .recordings import IN_DISTRIBUTION
from .shifts import Shift, SHIFTS

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / 'tools' / 'duckietown' / 'plan.json'
JPEG_QUALITY = 85
DOMAINRAND = 'domainrand'


def _frames(seq_dir: Path) -> list:
    files = sorted(seq_dir.glob('frame_*.png'))
    if not files:
        raise FileNotFoundError(f'{seq_dir}: no rendered frames '
                                '(run tools/duckietown/render_all.sh)')
    return files


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'{path}: unreadable frame')
    return img[..., ::-1]


def _fps(seq_dir: Path) -> float:
    meta = seq_dir / 'meta.json'
    return float(json.loads(meta.read_text()).get('fps', 15)) if meta.is_file() else 15.0


def write_sequence(out: Path, parts: list, fps: float, seed: int = 0,
                   jpeg_quality: int = JPEG_QUALITY) -> dict:
    """parts: [(png files, label, shift name or None)] written back to back as one recording."""
    if (out / 'metadata.yaml').is_file():
        return {}
    if out.exists():
        shutil.rmtree(out)  # an interrupted earlier write
    out.parent.mkdir(parents=True, exist_ok=True)
    period_ns = int(round(1e9 / fps))
    i, onset = 0, None
    with BagWriter(out, jpeg_quality=jpeg_quality) as w:
        for files, label, shift_name in parts:
            shift = Shift(shift_name, seed) if shift_name else None
            if label != IN_DISTRIBUTION and onset is None:
                onset = i
            for f in files:
                rgb = _read(f)
                w.write(shift(rgb) if shift else rgb, 1_000_000_000 + i * period_ns, label)
                i += 1
    return {'frames': i, 'onset': onset}


def build(raw: Path, out: Path, plan_path: Path = PLAN, shifts=SHIFTS) -> dict:
    from tqdm import tqdm
    plan = json.loads(plan_path.read_text())
    if plan.get('kind') == 'explicit':
        return build_explicit(raw, out, plan)
    seqs = {s['name']: s for s in plan['sequences']}
    jobs = []  # (split, name, role, shift, parts, fps)
    for s in seqs.values():
        d = raw / s['name']
        split, role = s['split'], s['role']
        if role in ('id', 'id_newmap'):
            jobs.append((split, s['name'], role, None, lambda d=d: [(_frames(d), IN_DISTRIBUTION,
                                                                     None)], d))
            if split in ('val', 'test'):
                for k, shift in enumerate(shifts):
                    def parts(d=d, shift=shift):
                        files = _frames(d)
                        half = len(files) // 2
                        return [(files[:half], IN_DISTRIBUTION, None),
                                (files[half:], shift, shift)]
                    jobs.append((split, f'{shift}__{s["name"]}', role, shift, parts, d))
        elif role == DOMAINRAND:
            base = next((b for b in seqs.values() if b['map'] == s['map'] and b['split'] == split
                         and b['role'] == 'id'), None)
            if base is None:
                continue

            def parts(d=d, b=raw / base['name']):
                lead = _frames(b)
                lead = lead[:len(lead) // 3]
                return [(lead, IN_DISTRIBUTION, None), (_frames(d), DOMAINRAND, None)]
            jobs.append((split, f'{DOMAINRAND}__{s["name"]}', role, DOMAINRAND, parts, d))
    index_path = out / 'index.json'
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    for split, name, role, shift, parts, d in tqdm(jobs, desc='recordings', unit='rec'):
        if not d.is_dir():
            tqdm.write(f'skip {name}: {d} not rendered yet')
            continue
        target = out / split / name
        info = write_sequence(target, parts(), _fps(d), seed=zlib.crc32(name.encode()))
        if info:
            index[f'{split}/{name}'] = {'split': split, 'role': role, 'shift': shift,
                                        'map': seqs.get(name.split('__')[-1], {}).get('map'),
                                        **info}
            index_path.write_text(json.dumps(index, indent=1, sort_keys=True))
    return index


def build_explicit(raw: Path, out: Path, plan: dict) -> dict:
    """Read a plan whose every entry says what it is (benchmarks/adapt/plan.json).

    One recording per entry at `out/<name>`, ID up to `onset`, then `shift` (a data/shifts.py
    name, applied to the frames; or `domainrand`: the lead-in comes from the plain render
    `lead_in` of the same route).  Entries with role `lead_in` are only the source of such
    lead-ins.
    """
    from tqdm import tqdm
    quality = int(plan.get('jpeg_quality', JPEG_QUALITY))
    defaults = plan.get('defaults', {})
    index_path = out / 'index.json'
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    for s in tqdm([s for s in plan['sequences'] if s['role'] != 'lead_in'],
                  desc='recordings', unit='rec'):
        d = raw / s['name']
        shift, onset = s.get('shift'), s.get('onset')
        files = _frames(d)
        if shift is None:
            parts = [(files, IN_DISTRIBUTION, None)]
        elif shift == DOMAINRAND:
            parts = [(_frames(raw / s['lead_in'])[:onset], IN_DISTRIBUTION, None),
                     (files[onset:], DOMAINRAND, None)]
        else:
            parts = [(files[:onset], IN_DISTRIBUTION, None), (files[onset:], shift, shift)]
        info = write_sequence(out / s['name'], parts, _fps(d), seed=zlib.crc32(s['name'].encode()),
                              jpeg_quality=quality)
        if info:
            index[s['name']] = {
                'split': s['split'], 'role': s['role'], 'shift': shift, 'map': s['map'],
                'place': s.get('place', s['map']), 'use': s.get('use'), 'seed': s['seed'],
                'camera': {'width': s.get('width', defaults.get('width')),
                           'height': s.get('height', defaults.get('height')),
                           'jpeg_quality': quality}, **info}
            index_path.write_text(json.dumps(index, indent=1, sort_keys=True))
    return index


def build_sample(raw: Path, dest: Path, base: str = 'test_udem1_0', shift: str = 'rain',
                 id_frames: int = 40, ood_frames: int = 35) -> dict:
    """Write the small recording committed under samples/: lane driving, then `shift` starts."""
    files = _frames(raw / base)
    start = max(0, len(files) // 2 - id_frames)
    lead, tail = (files[start:start + id_frames],
                  files[start + id_frames:start + id_frames + ood_frames])
    if dest.exists():
        shutil.rmtree(dest)
    info = write_sequence(dest, [(lead, IN_DISTRIBUTION, None), (tail, shift, shift)],
                          _fps(raw / base), seed=7)
    size = sum(f.stat().st_size for f in dest.rglob('*') if f.is_file())
    print(f'sample: {dest} ({info["frames"]} frames, shift {shift!r} from frame '
          f'{info["onset"]}, {size / 1e6:.1f} MB)')
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood dataset', description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    b = sub.add_parser('build', help='write labelled bags from rendered sequences')
    b.add_argument('--raw', type=Path, default=REPO / 'data' / 'duckietown' / 'raw')
    b.add_argument('--out', type=Path, default=REPO / 'data' / 'duckietown' / 'bags')
    b.add_argument('--plan', type=Path, default=PLAN)
    b.add_argument('--shifts', default=','.join(SHIFTS))
    s = sub.add_parser('sample', help='write the small sample recording')
    s.add_argument('--raw', type=Path, default=REPO / 'data' / 'duckietown' / 'raw')
    s.add_argument('--dest', type=Path, default=REPO / 'samples' / 'duckietown_rain')
    s.add_argument('--base', default='test_udem1_0')
    s.add_argument('--shift', default='rain')
    a = ap.parse_args(argv)
    if a.cmd == 'build':
        index = build(a.raw, a.out, a.plan, tuple(x for x in a.shifts.split(',') if x))
        print(f'{len(index)} recordings in {a.out}')
    else:
        build_sample(a.raw, a.dest, a.base, a.shift)
    return 0


if __name__ == '__main__':
    sys.exit(main())
