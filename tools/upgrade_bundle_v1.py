"""Convert a format-1 bundle to format 2.

Format 1 kept the statistics inside bundle.json or baked into the EARLIN edge graph; format 2 has
score head arrays as hashed .npy files, a calibration file and a known-answer self-test.

    .venv/bin/python tools/upgrade_bundle_v1.py models/vae_lean --out /tmp/vae_lean_v2

No data needed and no score changes: a Mahalanobis head's precision becomes its Cholesky factor
(the same quadratic form); EARLIN's in-graph whitened nearest-neighbour score is cut out of the
edge graph (which then outputs the statistics, `features`) and becomes a `wknn` head whose bank
is un-whitened back to feature space.  The calibration scores are kept.  Used once, to move the
shipped bundles to format 2 (their provenance says so).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import tempfile

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leanood_ros.bundle import ModelBundle, save_bundle  # noqa: E402
from leanood_ros.calibration import SELF_TEST_RTOL  # noqa: E402
from leanood_ros.detectors import build_detector  # noqa: E402
from leanood_ros.heads import (GaussianHead, KLPriorHead, KLToFittedHead,  # noqa: E402
                               WhitenedKnnHead, Whitener)


def _cut_earlin_scorer(src: Path, dst: Path) -> WhitenedKnnHead:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(src))
    g = model.graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    sub = next(n for n in g.node if n.op_type == 'Sub' and 'scorer.mean' in n.input)
    feats = sub.input[0]
    onnx.utils.extract_model(str(src), str(dst), ['image'], [feats, 'split'])
    cut = onnx.load(str(dst))
    for n in cut.graph.node:
        n.output[:] = ['features' if o == feats else o for o in n.output]
    for o in cut.graph.output:
        if o.name == feats:
            o.name = 'features'
    onnx.checker.check_model(cut)
    onnx.save(cut, str(dst))
    w = Whitener(init['scorer.mean'].astype(np.float64), init['scorer.chol'].astype(np.float64))
    bank = w.unwhiten(init['scorer.bank_t'].T.astype(np.float64))
    return WhitenedKnnHead('features', w, bank, max_bank=max(10000, len(bank)))


def _cholesky(precision) -> np.ndarray:
    """Return the Cholesky factor of a format-1 precision, jittered just enough to exist.

    Format 1 stored precisions rounded to 7 digits: a 256-d one can lose definiteness; the
    smallest diagonal jitter that restores it changes scores by < 1e-6 relative.
    """
    p = np.asarray(precision, np.float64)
    p = (p + p.T) / 2
    jitter = 0.0
    while True:
        try:
            return np.linalg.cholesky(p + jitter * np.eye(len(p)))
        except np.linalg.LinAlgError:
            jitter = max(jitter * 10, 1e-9 * float(np.mean(np.diag(p))))


def upgrade(src: Path, out: Path) -> Path:
    m = json.loads((src / 'bundle.json').read_text())
    if m.get('format_version') != 1:
        raise SystemExit(f'{src}: not a format-1 bundle')
    h = m['detector'].pop('head')
    cal = m.pop('calibration')
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for role, g in m['graphs'].items():
            g.pop('sha256', None)
            (tmp / g['file']).write_bytes((src / g['file']).read_bytes())
            if 'torch' in g:
                (tmp / g['torch']['file']).write_bytes((src / g['torch']['file']).read_bytes())
        if h['type'] == 'graph_output' and m['detector']['family'] == 'earlin':
            head = _cut_earlin_scorer(src / 'edge.onnx', tmp / 'edge.onnx')
            m['graphs']['detector']['outputs'] = ['features', 'split']
        elif h['type'] == 'mahalanobis':
            head = GaussianHead(h['input'], Whitener(np.asarray(h['mean'], np.float64),
                                                     _cholesky(h['precision'])))
        elif h['type'] == 'kl_to_fitted':
            head = KLToFittedHead(h['mu'], h['logvar'], Whitener(
                np.asarray(h['mean'], np.float64), _cholesky(h['precision'])))
        else:
            head = KLPriorHead(h['mu'], h['logvar'], h.get('dims'))
        if 'fitted_on' in h:
            m['detector']['fit_frames'] = int(h['fitted_on'].split()[0])
        m['detector']['score'] = head.describe() + '; higher = more OOD'
        m['calibration'] = {'source': cal.get('source', '')}
        m.setdefault('provenance', {})['upgraded'] = 'format 1 -> 2 (tools/upgrade_bundle_v1.py)'
        b = ModelBundle.draft(tmp, m, head)
        b.calibration_scores = np.sort(np.asarray(cal['scores'], np.float64))
        det = build_detector(b)
        b.manifest['self_test'] = {'frames': 'leanood_known_answer_v1', 'rtol': SELF_TEST_RTOL,
                                   'scores': [float(s) for s in det.known_answers()]}
        save_bundle(b, out, force=True)
    return out


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('src', type=Path)
    ap.add_argument('--out', type=Path, required=True)
    a = ap.parse_args()
    print(upgrade(a.src, a.out))
