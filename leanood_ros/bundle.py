"""Model bundles: one directory that carries everything a detector needs, and nothing executable.

    <bundle>/bundle.json        manifest (schema below; JSON only, no pickle anywhere)
    <bundle>/*.onnx             graphs
    <bundle>/head/<name>.npy    the score head's fitted arrays (mean, Cholesky factor, bank)
    <bundle>/calibration.npy    ID calibration scores (conformal p-values)
    <bundle>/README.md          model card, generated from the manifest

Every file is named in the manifest with its sha256, must be a regular file inside the bundle
(no symlinks, no `..`), and is hashed from the very bytes that are then parsed or handed to ONNX
Runtime.  Every manifest field is type- and range-checked; a problem is a `BundleError` whose one
line names the file and the key.  `self_test` records the scores of deterministic frames when the
bundle is written; `detectors.BundleDetector.self_test` reproduces them before a node trusts the
bundle (catches zeroed weights, swapped statistics, a wrong onnxruntime build).

A bundle is built in memory (`ModelBundle.draft`), fitted and calibrated there, and written once
(`save_bundle`, atomically: a half-written bundle never replaces a good one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import io
import json
import math
import os
from pathlib import Path
import shutil
import tempfile

import numpy as np

from .heads import HEAD_ARRAYS, head_from_spec, HEADS, HeadSpecError, ScoreHead
from .preprocess import Preprocessing

FORMAT = 'leanood_bundle'
FORMAT_VERSION = 2
MANIFEST = 'bundle.json'
CALIBRATION_FILE = 'calibration.npy'
FAMILIES = ('vae', 'earlin', 'reference')
HEAD_TYPES = tuple(HEADS)
MIN_CALIBRATION_SCORES = 20
MAX_FILE_BYTES = 1 << 30          # no bundle file is read past this (memory bombs)
MAX_MANIFEST_BYTES = 16 << 20
# Features computed without a graph (the trivial colour-statistics reference).
BUILTIN_FEATURES = ('colour_stats',)


class BundleError(RuntimeError):
    """A bundle that cannot be trusted; the message names the file and the problem."""


@dataclass(frozen=True)
class GraphSpec:
    role: str
    path: Path
    sha256: str
    input: str   # noqa: A003  the manifest's key, read across the code base
    outputs: tuple

    def read(self) -> bytes:
        """Return the graph's bytes, verified against the manifest's sha256 (load these)."""
        return read_verified(self.path, self.sha256, f"graph '{self.role}'")


@dataclass
class ModelBundle:
    path: Path                        # the directory the graph files are read from
    manifest: dict                    # everything but the head's arrays and the calibration
    preprocessing: Preprocessing
    graphs: dict
    head: ScoreHead
    calibration_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def name(self) -> str:
        return self.manifest['name']

    @property
    def family(self) -> str:
        return self.manifest['detector']['family']

    @property
    def forward(self) -> dict | None:
        return self.manifest.get('forward')

    @classmethod
    def draft(cls, path: Path, manifest: dict, head: ScoreHead) -> 'ModelBundle':
        """Make an unsaved bundle whose graph files are in `path` (hashed here).

        Fit its head, calibrate it, then `save_bundle` it.
        """
        path = Path(path)
        manifest = json.loads(json.dumps(manifest))    # a private copy
        manifest.setdefault('format', FORMAT)
        manifest['format_version'] = FORMAT_VERSION
        for g in manifest.get('graphs', {}).values():
            g['sha256'] = sha256_of(path / g['file'])
            if 'torch' in g:
                g['torch']['sha256'] = sha256_of(path / g['torch']['file'])
        graphs = {role: GraphSpec(role, path / g['file'], g['sha256'], g['input'],
                                  tuple(g['outputs']))
                  for role, g in manifest.get('graphs', {}).items()}
        return cls(path, manifest, Preprocessing.from_dict(manifest['preprocessing']), graphs,
                   head)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def read_verified(path: Path, sha256: str, what: str) -> bytes:
    """Read a bundle file once (never following a symlink) and check its sha256."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except OSError as exc:
        raise BundleError(f'{path}: {what} cannot be opened ({exc.strerror})') from exc
    with os.fdopen(fd, 'rb') as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise BundleError(f'{path}: {what} is larger than {MAX_FILE_BYTES >> 20} MB')
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BundleError(f'{path}: sha256 mismatch for {what} (manifest {str(sha256)[:12]}..., '
                          f'file {actual[:12]}...): modified or corrupted')
    return data


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
    """Resolve a path to a bundle directory, or a variant name under the models directory."""
    if not model:
        raise BundleError('no model given (set the `model` parameter to a variant name or a path)')
    p = Path(model).expanduser()
    if p.is_dir() or os.sep in model or model.startswith('.'):
        return p
    return (models_dir or default_models_dir()) / model


# -- schema -----------------------------------------------------------------------------------
class _Checker:
    """Type and range checks that name the manifest key (`detector.head.type`, ...)."""

    def __init__(self, manifest_path: Path):
        self.where = manifest_path

    def fail(self, key: str, problem: str) -> BundleError:
        return BundleError(f'{self.where}: {key}: {problem}')

    def get(self, d: dict, key: str, types, prefix: str = '', optional: bool = False):
        name = f'{prefix}{key}'
        if key not in d:
            if optional:
                return None
            raise self.fail(name, 'missing')
        v = d[key]
        if types is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise self.fail(name, f'must be a finite number, got {_short(v)}')
            return float(v)
        if types is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise self.fail(name, f'must be an integer, got {_short(v)}')
        if not isinstance(v, types):
            want = types.__name__ if isinstance(types, type) else '/'.join(t.__name__
                                                                           for t in types)
            raise self.fail(name, f'must be a {want}, got {type(v).__name__} {_short(v)}')
        return v

    def text(self, d, key, prefix='', optional=False, max_len=10000) -> str | None:
        v = self.get(d, key, str, prefix, optional)
        if v is not None and len(v) > max_len:
            raise self.fail(f'{prefix}{key}', f'longer than {max_len} characters')
        return v

    def sha(self, d, key, prefix) -> str:
        v = self.text(d, key, prefix)
        if len(v) != 64 or any(c not in '0123456789abcdef' for c in v):
            raise self.fail(f'{prefix}{key}', 'must be 64 lowercase hex digits')
        return v

    def file(self, root: Path, d: dict, prefix: str) -> tuple:
        """(path, sha256) of a file entry, refusing anything outside the bundle."""
        rel = self.text(d, 'file', prefix, max_len=255)
        digest = self.sha(d, 'sha256', prefix)
        p = Path(rel)
        if not rel or p.is_absolute() or '..' in p.parts or rel != p.as_posix():
            raise self.fail(f'{prefix}file', f'must be a relative path inside the bundle, got '
                                             f'{_short(rel)}')
        full = root / p
        parent = root
        for part in p.parts:             # no symlink anywhere below the bundle directory
            parent = parent / part
            if parent.is_symlink():
                raise self.fail(f'{prefix}file', f'{parent} is a symbolic link (bundle files '
                                                 f'must be regular files inside the bundle)')
        if not full.is_file():
            raise BundleError(f'{full}: missing ({prefix}file)')
        if not full.resolve().is_relative_to(root.resolve()):
            raise self.fail(f'{prefix}file', f'{full} is outside the bundle')
        return full, digest


def _short(v, n: int = 40) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + '...'


def load_bundle(model: str | Path, models_dir: Path | None = None,
                verify_hashes: bool = True) -> ModelBundle:
    """Read and check a bundle; every problem is a one-line `BundleError`.

    `verify_hashes=False` skips hashing the graphs here (they are still verified when read).
    """
    path = resolve_bundle_path(str(model), models_dir)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f'model bundle {path}: directory does not exist')
    if manifest_path.is_symlink() or not manifest_path.is_file():
        raise BundleError(f'{manifest_path}: missing manifest (or a symbolic link)')
    try:
        raw = manifest_path.read_bytes()
        if len(raw) > MAX_MANIFEST_BYTES:
            raise BundleError(f'{manifest_path}: larger than {MAX_MANIFEST_BYTES >> 20} MB')
        manifest = json.loads(raw.decode('utf-8'), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f'{manifest_path}: not readable JSON ({_short(str(exc), 120)})') from exc
    c = _Checker(manifest_path)
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise BundleError(f"{manifest_path}: not a leanood bundle (format must be '{FORMAT}')")
    version = manifest.get('format_version')
    if version != FORMAT_VERSION:
        raise c.fail('format_version', f'{_short(version)} is not supported (this leanood_ros '
                                       f'reads version {FORMAT_VERSION}; re-export the bundle)')
    name = c.text(manifest, 'name', max_len=100)
    if not name or not name.isprintable():
        raise c.fail('name', 'must be a non-empty printable string')
    c.text(manifest, 'description', optional=True)
    for key in ('provenance', 'metrics', 'flops'):
        c.get(manifest, key, dict, optional=key != 'provenance')

    det = c.get(manifest, 'detector', dict)
    if c.text(det, 'family', 'detector.') not in FAMILIES:
        raise c.fail('detector.family', f'must be one of {FAMILIES}')
    c.text(det, 'score', 'detector.', optional=True)
    head_spec = c.get(det, 'head', dict, 'detector.')

    pre = c.get(manifest, 'preprocessing', dict)
    try:
        preprocessing = Preprocessing.from_dict(pre)
    except (ValueError, TypeError) as exc:
        raise c.fail('preprocessing', _short(str(exc), 200)) from exc

    graphs = {}
    for role, g in c.get(manifest, 'graphs', dict).items():
        pref = f'graphs.{role}.'
        if not isinstance(g, dict):
            raise c.fail(f'graphs.{role}', 'must be a mapping')
        gpath, digest = c.file(path, g, pref)
        gin = c.text(g, 'input', pref, max_len=200)
        outs = c.get(g, 'outputs', list, pref)
        if not outs or not all(isinstance(o, str) and o for o in outs):
            raise c.fail(f'{pref}outputs', 'must be a non-empty list of names')
        twin = c.get(g, 'torch', dict, pref, optional=True)
        if twin is not None:
            c.file(path, twin, pref + 'torch.')
            c.get(twin, 'architecture', dict, pref + 'torch.')
        if verify_hashes and sha256_of(gpath) != digest:
            read_verified(gpath, digest, f"graph '{role}'")   # raises with the details
        graphs[role] = GraphSpec(role, gpath, digest, gin, tuple(outs))

    head = _load_head(c, path, head_spec, graphs)
    scores = _load_calibration(c, path, c.get(manifest, 'calibration', dict))
    _check_decision(c, manifest)
    _check_self_test(c, manifest, scores)
    fwd = c.get(manifest, 'forward', dict, optional=True)
    if fwd is not None:
        out = c.text(fwd, 'output', 'forward.')
        if not any(out in g.outputs for g in graphs.values()):
            raise c.fail('forward.output', f'{_short(out)} is not a graph output')
        c.get(fwd, 'bytes', int, 'forward.')
        shape = c.get(fwd, 'shape', list, 'forward.')
        if not (shape and all(type(d) is int and d > 0 for d in shape)):
            raise c.fail('forward.shape', 'must be a list of positive integers (1, C, H, W)')
        if c.text(fwd, 'dtype', 'forward.', optional=True) not in (None, 'float32', 'float16'):
            raise c.fail('forward.dtype', "must be 'float32' or 'float16'")
    return ModelBundle(path=path, manifest=manifest, preprocessing=preprocessing,
                       graphs=graphs, head=head, calibration_scores=scores)


def _no_constant(name):
    raise ValueError(f'{name} is not valid JSON')


def _load_npy(c: _Checker, root: Path, entry, key: str) -> np.ndarray:
    if not isinstance(entry, dict):
        raise c.fail(key, 'must be a mapping with file and sha256')
    p, digest = c.file(root, entry, key + '.')
    data = read_verified(p, digest, key)
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f'{p}: not a NumPy .npy array ({_short(str(exc), 80)})') from exc
    if not isinstance(a, np.ndarray) or a.dtype.kind != 'f' or a.dtype.itemsize > 8:
        raise BundleError(f'{p}: must hold a float32/float64 array, got '
                          f'{getattr(a, "dtype", type(a))}')
    return a


def _load_head(c: _Checker, root: Path, spec: dict, graphs: dict) -> ScoreHead:
    kind = spec.get('type')
    if not isinstance(kind, str) or kind not in HEADS:
        raise c.fail('detector.head.type', f'must be one of {HEAD_TYPES}, got {_short(kind)}')
    entries = spec.get('arrays', {})
    if not isinstance(entries, dict) or set(entries) != set(HEAD_ARRAYS[kind]):
        raise c.fail('detector.head.arrays', f'{kind} needs exactly the arrays '
                                             f'{list(HEAD_ARRAYS[kind])}')
    arrays = {k: _load_npy(c, root, e, f'detector.head.arrays.{k}') for k, e in entries.items()}
    try:
        head = head_from_spec({k: v for k, v in spec.items() if k != 'arrays'}, arrays)
    except HeadSpecError as exc:
        raise c.fail('detector.head', str(exc)) from exc
    outputs = {o for g in graphs.values() for o in g.outputs} if graphs else \
        set(BUILTIN_FEATURES)
    missing = [i for i in head.inputs if i not in outputs]
    if missing:
        raise c.fail('detector.head', f'reads {missing}, which no graph outputs (outputs: '
                                      f'{sorted(outputs)})')
    if graphs and 'detector' not in graphs:
        raise c.fail('graphs', "a 'detector' graph is required")
    return head


def _load_calibration(c: _Checker, root: Path, cal: dict) -> np.ndarray:
    scores = _load_npy(c, root, cal, 'calibration').astype(np.float64)
    c.text(cal, 'source', 'calibration.', optional=True)
    if scores.ndim != 1 or scores.size < MIN_CALIBRATION_SCORES:
        raise c.fail('calibration', f'needs at least {MIN_CALIBRATION_SCORES} scores, got '
                                    f'{scores.size}')
    if not np.all(np.isfinite(scores)):
        raise c.fail('calibration', 'contains NaN or infinite scores')
    return np.sort(scores)


def _check_decision(c: _Checker, manifest: dict) -> None:
    decision = c.get(manifest, 'decision', dict, optional=True)
    if not decision:
        return
    from .parameters import DECISION_KEYS, check_value   # the node's own rules for them
    for k, v in decision.items():
        if k == 'tuning':
            continue
        if k not in DECISION_KEYS:
            raise c.fail(f'decision.{k}', f'is not a decision setting (one of {DECISION_KEYS})')
        problem = check_value(k, v)
        if problem:
            raise c.fail(f'decision.{k}', _short(problem, 120))


def _check_self_test(c: _Checker, manifest: dict, calibration: np.ndarray) -> None:
    st = c.get(manifest, 'self_test', dict)
    if c.text(st, 'frames', 'self_test.') != KNOWN_ANSWER_FRAMES:
        raise c.fail('self_test.frames', f"must be '{KNOWN_ANSWER_FRAMES}'")
    scores = c.get(st, 'scores', list, 'self_test.')
    if not scores or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                             and math.isfinite(s) for s in scores):
        raise c.fail('self_test.scores', 'must be a non-empty list of finite numbers')
    rtol = c.get(st, 'rtol', float, 'self_test.')
    if not 0 < rtol <= 0.1:
        raise c.fail('self_test.rtol', f'must be in (0, 0.1], got {rtol}')
    # Calibration scores far beyond anything the detector produces (even on frames made to be
    # unlike any camera's) would make every frame "in distribution": refuse them.
    ceiling = CALIBRATION_CEILING * max(abs(s) for s in scores)
    if calibration[-1] > ceiling:
        raise c.fail('calibration', f'scores reach {calibration[-1]:.6g}, over '
                                    f'{CALIBRATION_CEILING:g}x the largest known-answer score '
                                    f'({ceiling / CALIBRATION_CEILING:.6g}): nothing could '
                                    f'ever be flagged')
    if calibration[0] < 0 and all(s >= 0 for s in scores):
        raise c.fail('calibration', 'negative scores from a detector whose scores are distances')


CALIBRATION_CEILING = 100.0
KNOWN_ANSWER_FRAMES = 'leanood_known_answer_v1'


# -- writing ----------------------------------------------------------------------------------
def save_bundle(bundle: ModelBundle, out: Path | None = None, force: bool = False,
                model_card: str | None = None) -> Path:
    """Write `bundle` to `out` (default: where it is) atomically.

    Everything goes to a sibling temporary directory that then replaces `out`.  An existing `out`
    other than the bundle's own directory is replaced only when it is a bundle and `force` is set;
    anything else there is never deleted.
    """
    out = Path(out or bundle.path)
    in_place = out.exists() and out.resolve() == Path(bundle.path).resolve()
    if out.exists() and not in_place:
        if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file()):
            raise BundleError(f'{out} exists and is not a bundle: refusing to overwrite it')
        if (out / MANIFEST).is_file() and not force:
            raise BundleError(f'{out} is an existing bundle: pass --force to replace it')
    if bundle.calibration_scores.size < MIN_CALIBRATION_SCORES:
        raise BundleError(f'bundle {bundle.name}: calibrate before saving (needs at least '
                          f'{MIN_CALIBRATION_SCORES} ID scores)')
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.', dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)     # mkdtemp makes it private; a bundle is a normal folder
    try:
        manifest = json.loads(json.dumps(bundle.manifest))
        manifest['format'], manifest['format_version'] = FORMAT, FORMAT_VERSION
        for role, g in manifest['graphs'].items():
            data = bundle.graphs[role].read()
            (tmp / g['file']).parent.mkdir(parents=True, exist_ok=True)
            (tmp / g['file']).write_bytes(data)
        spec, arrays = bundle.head.to_spec()
        spec['arrays'] = {k: _write_npy(tmp, f'head/{k}.npy', a) for k, a in arrays.items()}
        manifest['detector']['head'] = spec
        manifest['detector'].setdefault('score', bundle.head.describe() + '; higher = more OOD')
        cal = dict(manifest.get('calibration') or {})
        cal.update(_write_npy(tmp, CALIBRATION_FILE, bundle.calibration_scores),
                   n=int(bundle.calibration_scores.size))
        manifest['calibration'] = cal
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + '\n', encoding='utf-8')
        (tmp / 'README.md').write_text(model_card or render_model_card(manifest),
                                       encoding='utf-8')
        if 'torch' in str(manifest['graphs']):
            _copy_torch_twins(bundle, manifest, tmp)
        load_bundle(tmp)     # never write what we would refuse to read
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle.path = out
    bundle.manifest = manifest
    bundle.graphs = {r: GraphSpec(r, out / manifest['graphs'][r]['file'], g.sha256, g.input,
                                  g.outputs) for r, g in bundle.graphs.items()}
    return out / MANIFEST


def _write_npy(root: Path, rel: str, a: np.ndarray) -> dict:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    data = buf.getvalue()
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    return {'file': rel, 'sha256': hashlib.sha256(data).hexdigest()}


def _copy_torch_twins(bundle: ModelBundle, manifest: dict, tmp: Path) -> None:
    for g in manifest['graphs'].values():
        twin = g.get('torch', {}).get('file')
        if twin:
            src = Path(bundle.path) / twin
            if not src.is_file() or src.is_symlink():
                raise BundleError(f'{src}: torch twin missing')
            shutil.copyfile(src, tmp / twin)


def _swap_in(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f'.{out.name}.old.{os.getpid()}')
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def render_model_card(manifest: dict) -> str:
    det = manifest.get('detector', {})
    prov = manifest.get('provenance', {})
    cal = manifest.get('calibration', {})
    lines = [f"# Model bundle `{manifest.get('name')}`", '',
             manifest.get('description', ''), '',
             f"- Detector family: `{det.get('family')}`; "
             f"score head `{det.get('head', {}).get('type')}`: "
             f"{det.get('score', '')}",
             f"- Preprocessing: `{json.dumps(manifest.get('preprocessing'))}`",
             f"- Calibration: {cal.get('n', '?')} ID scores from {cal.get('source', '?')}"]
    for role, g in manifest.get('graphs', {}).items():
        lines.append(f"- Graph `{role}`: `{g['file']}` (input `{g['input']}`, outputs "
                     f"{', '.join(g['outputs'])}; sha256 `{g.get('sha256', '')[:16]}...`)")
    for k, e in det.get('head', {}).get('arrays', {}).items():
        lines.append(f"- Head array `{k}`: `{e['file']}` (sha256 `{e['sha256'][:16]}...`)")
    if manifest.get('forward'):
        lines.append(f"- Forwarded tensor: `{json.dumps(manifest['forward'])}`")
    if manifest.get('decision'):
        d = {k: v for k, v in manifest['decision'].items() if k != 'tuning'}
        lines.append(f'- Recommended decision settings: `{json.dumps(d)}`')
    lines += ['', '## Provenance', '']
    lines += [f'- {k}: {v}' for k, v in prov.items()]
    metrics = manifest.get('metrics') or {}
    if metrics:
        lines += ['', '## Metrics', '', '```json', json.dumps(metrics, indent=1), '```']
    return '\n'.join(lines) + '\n'
