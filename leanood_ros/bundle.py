"""Model bundles: one directory that carries everything a detector needs, and nothing executable.

    <bundle>/bundle.json   manifest (format below), JSON only - no pickle anywhere
    <bundle>/*.onnx        graphs, each verified against the sha256 in the manifest at load
    <bundle>/README.md     model card, generated from the manifest

Manifest keys: format, format_version, name, detector {family, head, score}, graphs {role: {file,
sha256, input, outputs}}, preprocessing, calibration {scores, source}, provenance, metrics, and for
split models `forward` (the tensor sent on to the cloud part).  The fitted statistics a score head
needs (e.g. a Mahalanobis mean and precision) travel inside `detector.head`, so the node never
guesses and never refits.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .preprocess import Preprocessing

FORMAT = 'leanood_bundle'
FORMAT_VERSION = 1
MANIFEST = 'bundle.json'
FAMILIES = ('vae', 'earlin', 'reference')
HEAD_TYPES = ('kl_divergence', 'kl_to_fitted', 'mahalanobis', 'graph_output')
MIN_CALIBRATION_SCORES = 20
# Features computed without a graph (the trivial colour-statistics reference).
BUILTIN_FEATURES = ('colour_stats',)


class BundleError(RuntimeError):
    """A bundle that cannot be trusted; the message names the file and the problem."""


@dataclass(frozen=True)
class GraphSpec:
    role: str
    path: Path
    sha256: str
    input: str
    outputs: tuple


@dataclass
class ModelBundle:
    path: Path
    manifest: dict
    preprocessing: Preprocessing
    graphs: dict
    calibration_scores: np.ndarray
    head: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest['name']

    @property
    def family(self) -> str:
        return self.manifest['detector']['family']

    @property
    def forward(self) -> dict | None:
        return self.manifest.get('forward')


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def default_models_dir() -> Path:
    """`$LEANOOD_MODELS`, else the installed package share, else the source checkout's models/."""
    env = os.environ.get('LEANOOD_MODELS')
    if env:
        return Path(env)
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory('leanood_ros')) / 'models'
        if share.is_dir():
            return share
    except Exception:  # not installed as a ROS package: fall back to the checkout
        pass
    return Path(__file__).resolve().parent.parent / 'models'


def resolve_bundle_path(model: str, models_dir: Path | None = None) -> Path:
    """A path to a bundle directory, or a variant name looked up under the models directory."""
    if not model:
        raise BundleError('no model given (set the `model` parameter to a variant name or a path)')
    p = Path(model).expanduser()
    if p.is_dir() or os.sep in model or model.startswith('.'):
        return p
    return (models_dir or default_models_dir()) / model


def load_bundle(model: str | Path, models_dir: Path | None = None,
                verify_hashes: bool = True) -> ModelBundle:
    path = resolve_bundle_path(str(model), models_dir)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f'model bundle {path}: directory does not exist')
    if not manifest_path.is_file():
        raise BundleError(f'{manifest_path}: missing manifest')
    try:
        manifest = json.loads(manifest_path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f'{manifest_path}: not readable JSON ({exc})') from exc

    def bad(problem: str) -> BundleError:
        return BundleError(f'{manifest_path}: {problem}')

    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise bad(f"not a leanood bundle (format must be '{FORMAT}')")
    if manifest.get('format_version') != FORMAT_VERSION:
        raise bad(f"format_version {manifest.get('format_version')!r} is not supported "
                  f'(this leanood_ros reads version {FORMAT_VERSION})')
    for key in ('name', 'detector', 'graphs', 'preprocessing', 'calibration', 'provenance'):
        if key not in manifest:
            raise bad(f"missing key '{key}'")
    detector = manifest['detector']
    if not isinstance(detector, dict) or detector.get('family') not in FAMILIES:
        raise bad(f'detector.family must be one of {FAMILIES}')
    head = detector.get('head')
    if not isinstance(head, dict) or head.get('type') not in HEAD_TYPES:
        raise bad(f'detector.head.type must be one of {HEAD_TYPES}')
    try:
        preprocessing = Preprocessing.from_dict(manifest['preprocessing'])
    except (ValueError, TypeError) as exc:
        raise bad(str(exc)) from exc

    graphs = {}
    if not isinstance(manifest['graphs'], dict):
        raise bad('graphs must be a mapping of role -> graph')
    for role, g in manifest['graphs'].items():
        if not isinstance(g, dict) or not all(k in g for k in ('file', 'sha256', 'input', 'outputs')):
            raise bad(f"graph '{role}' needs file, sha256, input and outputs")
        gpath = path / g['file']
        if Path(g['file']).is_absolute() or '..' in Path(g['file']).parts:
            raise bad(f"graph '{role}' file must be inside the bundle, got {g['file']!r}")
        if not gpath.is_file():
            raise BundleError(f"{gpath}: graph file '{role}' is missing")
        if verify_hashes:
            actual = sha256_of(gpath)
            if actual != g['sha256']:
                raise BundleError(f'{gpath}: sha256 mismatch (manifest {g["sha256"][:12]}..., '
                                  f'file {actual[:12]}...): the graph was modified or corrupted')
        graphs[role] = GraphSpec(role, gpath, g['sha256'], g['input'], tuple(g['outputs']))
    if 'detector' not in graphs and head['type'] != 'mahalanobis':
        raise bad("a 'detector' graph is required")

    cal = manifest['calibration']
    scores = cal.get('scores') if isinstance(cal, dict) else None
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise bad(f'calibration.scores must be a list of numbers ({exc})') from exc
    if scores.ndim != 1 or scores.size < MIN_CALIBRATION_SCORES:
        raise bad(f'calibration.scores needs at least {MIN_CALIBRATION_SCORES} scores, '
                  f'got {scores.size}')
    if not np.all(np.isfinite(scores)):
        raise bad('calibration.scores contains NaN or infinite values')
    _check_head(head, graphs, bad)
    return ModelBundle(path=path, manifest=manifest, preprocessing=preprocessing, graphs=graphs,
                       calibration_scores=np.sort(scores), head=head)


def _check_head(head: dict, graphs: dict, bad) -> None:
    outputs = set()
    for g in graphs.values():
        outputs.update(g.outputs)
    if head['type'] in ('kl_divergence', 'kl_to_fitted'):
        for k in ('mu', 'logvar'):
            if head.get(k) not in outputs:
                raise bad(f"detector.head.{k} must name a graph output, got {head.get(k)!r}")
        dims = head.get('dims')
        if dims is not None and not (isinstance(dims, list) and dims
                                     and all(isinstance(d, int) and d >= 0 for d in dims)):
            raise bad('detector.head.dims must be null or a non-empty list of indices')
    if head['type'] == 'kl_to_fitted':
        mean = np.asarray(head.get('mean', []), dtype=np.float64)
        prec = np.asarray(head.get('precision', []), dtype=np.float64)
        if mean.ndim != 1 or prec.shape != (mean.size, mean.size) or \
                not isinstance(head.get('logdet'), (int, float)):
            raise bad('detector.head needs mean (k), precision (k x k) and logdet')
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(prec))):
            raise bad('detector.head mean/precision contain NaN or infinite values')
    elif head['type'] == 'graph_output':
        if head.get('output') not in outputs:
            raise bad(f"detector.head.output must name a graph output, got {head.get('output')!r}")
    elif head['type'] == 'mahalanobis':
        mean = np.asarray(head.get('mean', []), dtype=np.float64)
        prec = np.asarray(head.get('precision', []), dtype=np.float64)
        if mean.ndim != 1 or mean.size == 0 or prec.shape != (mean.size, mean.size):
            raise bad('detector.head needs mean (d) and precision (d x d)')
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(prec))):
            raise bad('detector.head mean/precision contain NaN or infinite values')
        known = outputs if graphs else set(BUILTIN_FEATURES)
        if head.get('input') not in known:
            raise bad(f"detector.head.input must be one of {sorted(known)}, got {head.get('input')!r}")


def write_bundle(path: Path, manifest: dict, model_card: str | None = None) -> Path:
    """Write bundle.json (filling in graph sha256s) and a model card; graphs must already be there."""
    path = Path(path)
    manifest = dict(manifest)
    manifest.setdefault('format', FORMAT)
    manifest.setdefault('format_version', FORMAT_VERSION)
    for role, g in manifest.get('graphs', {}).items():
        g['sha256'] = sha256_of(path / g['file'])
    cal = manifest.get('calibration', {})
    if 'scores' in cal:
        cal['scores'] = [_round(s) for s in cal['scores']]
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=False) + '\n',
                                 encoding='utf-8')
    (path / 'README.md').write_text(model_card or render_model_card(manifest), encoding='utf-8')
    return path / MANIFEST


def _round(x: float) -> float:
    x = float(x)
    return x if not math.isfinite(x) else float(f'{x:.7g}')


def render_model_card(manifest: dict) -> str:
    det = manifest.get('detector', {})
    prov = manifest.get('provenance', {})
    lines = [f"# Model bundle `{manifest.get('name')}`", '',
             manifest.get('description', ''), '',
             f"- Detector family: `{det.get('family')}`; score: {det.get('score', '')}",
             f"- Preprocessing: `{json.dumps(manifest.get('preprocessing'))}`",
             f"- Calibration: {len(manifest.get('calibration', {}).get('scores', []))} ID scores "
             f"from {manifest.get('calibration', {}).get('source', '?')}"]
    for role, g in manifest.get('graphs', {}).items():
        lines.append(f"- Graph `{role}`: `{g['file']}` (input `{g['input']}`, outputs "
                     f"{', '.join(g['outputs'])}; sha256 `{g.get('sha256', '')[:16]}...`)")
    if manifest.get('forward'):
        lines.append(f"- Forwarded tensor: `{json.dumps(manifest['forward'])}`")
    lines += ['', '## Provenance', '']
    lines += [f'- {k}: {v}' for k, v in prov.items()]
    metrics = manifest.get('metrics') or {}
    if metrics:
        lines += ['', '## Metrics', '', '```json', json.dumps(metrics, indent=1), '```']
    return '\n'.join(lines) + '\n'
