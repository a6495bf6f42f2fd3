"""Bundles: loading, the schema, tampering (issue: fail-safe under attack), atomic writing."""
import json
from pathlib import Path
import shutil

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from bundle_factory import edit_manifest, replace_file
import fault_table
from leanood_ros.backends import BackendError, make_backend
from leanood_ros.bundle import (BundleError, load_bundle, resolve_bundle_path, save_bundle)
from leanood_ros.detectors import build_detector
from leanood_ros.image_conversion import from_array


@pytest.fixture
def bundle_dir(tiny_bundle, tmp_path):
    d = tmp_path / 'b'
    shutil.copytree(tiny_bundle, d)
    return d


@pytest.fixture(scope='module')
def fitted_bundle(tmp_path_factory):
    """Build a tiny bundle with a memory-bank head, so that tampering with arrays can be tested."""
    from bundle_factory import make_tiny_bundle
    from leanood_ros.heads import WhitenedKnnHead
    return make_tiny_bundle(tmp_path_factory.mktemp('fitted') / 'wknn', n_calibration=240,
                            head=WhitenedKnnHead('mu'))


def npy_bytes(a) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def test_tiny_bundle_loads_scores_and_passes_its_self_test(tiny_bundle):
    b = load_bundle(tiny_bundle)
    assert b.family == 'vae' and b.calibration_scores.size == 200
    assert np.all(np.diff(b.calibration_scores) >= 0)
    det = build_detector(b)
    det.self_test()
    s = det.score(from_array(np.full((50, 60, 3), 100, np.uint8)))
    assert np.isfinite(s) and s >= 0


@pytest.mark.parametrize('model', ['vae_lean', 'vae_student64_fp32', 'vae_baseline',
                                   'earlin_lite0'])
def test_shipped_bundles_load_and_pass_their_self_test(model):
    det = build_detector(load_bundle(model))
    det.self_test()
    frame = from_array(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cold = det.score(frame)
    assert det.warm_up() > 0.0
    assert det.score(frame) == pytest.approx(cold, rel=1e-6)


def test_variant_names_resolve_under_models_dir(tiny_bundle):
    assert load_bundle('tiny', models_dir=tiny_bundle.parent).name == 'tiny_test_vae'
    assert resolve_bundle_path('vae_lean', tiny_bundle.parent) == tiny_bundle.parent / 'vae_lean'


def _m(key_path):
    def get(m):
        for k in key_path:
            m = m[k]
        return m
    return get


@pytest.mark.parametrize('damage,message', [
    (lambda d: (d / 'encoder.onnx').unlink(), 'missing'),
    (lambda d: (d / 'encoder.onnx').write_bytes((d / 'encoder.onnx').read_bytes() + b'x'),
     'sha256 mismatch'),
    (lambda d: (d / 'calibration.npy').write_bytes(b'x'), 'sha256 mismatch'),
    (lambda d: (d / 'bundle.json').unlink(), 'missing manifest'),
    (lambda d: (d / 'bundle.json').write_text('[1, 2'), 'not readable JSON'),
    (lambda d: (d / 'bundle.json').write_text('{"a": NaN}'), 'not readable JSON'),
    (lambda d: (d / 'bundle.json').write_bytes(b'\xff\xfe\x00'), 'not readable JSON'),
    (lambda d: edit_manifest(d, lambda m: m.update(format='other')), 'not a leanood bundle'),
    (lambda d: edit_manifest(d, lambda m: m.update(format_version=1)), 'format_version'),
    (lambda d: edit_manifest(d, lambda m: m.pop('provenance')), 'provenance: missing'),
    (lambda d: edit_manifest(d, lambda m: m.update(name=123)), 'name: must be a str'),
    (lambda d: edit_manifest(d, lambda m: m.update(name='x' * 1000)), 'name: longer'),
    (lambda d: edit_manifest(d, lambda m: m['detector'].update(family='magic')),
     'detector.family'),
    (lambda d: edit_manifest(d, lambda m: m['detector']['head'].update(type='x')),
     'detector.head.type'),
    (lambda d: edit_manifest(d, lambda m: m['detector']['head'].update(mu='nope')),
     "reads \\['nope'"),
    (lambda d: edit_manifest(d, lambda m: m['detector']['head'].update(dims='abc')), 'dims'),
    (lambda d: edit_manifest(d, lambda m: m['graphs']['detector'].update(file=7)),
     'graphs.detector.file: must be a str'),
    (lambda d: edit_manifest(d, lambda m: m['graphs']['detector'].update(sha256=['a'])),
     'graphs.detector.sha256: must be a str'),
    (lambda d: edit_manifest(d, lambda m: m['graphs']['detector'].update(outputs={'mu': 1})),
     'graphs.detector.outputs: must be a list'),
    (lambda d: edit_manifest(d, lambda m: m['graphs']['detector'].update(file='../x.onnx')),
     'inside the bundle'),
    (lambda d: edit_manifest(d, lambda m: m['graphs']['detector'].update(file='/etc/passwd')),
     'inside the bundle'),
    (lambda d: edit_manifest(d, lambda m: m.update(preprocessing='rgb')),
     'preprocessing: must be a dict'),
    (lambda d: edit_manifest(d, lambda m: m['preprocessing'].update(input_size=[3])),
     'input_size'),
    (lambda d: edit_manifest(d, lambda m: m['preprocessing'].update(mean='x')),
     'preprocessing'),
    (lambda d: edit_manifest(d, lambda m: m['preprocessing'].update(color_order='xyz')),
     'color_order'),
    (lambda d: edit_manifest(d, lambda m: m.update(decision='cusum')),
     'decision: must be a dict'),
    (lambda d: edit_manifest(d, lambda m: m.update(decision={'alpha': 'x'})),
     'decision.alpha'),
    (lambda d: edit_manifest(d, lambda m: m.update(decision={'alpha': 7.0})), 'decision.alpha'),
    (lambda d: edit_manifest(d, lambda m: m.update(decision={'model': 'x'})), 'decision.model'),
    (lambda d: edit_manifest(d, lambda m: m['self_test'].update(scores=[])), 'self_test.scores'),
    (lambda d: edit_manifest(d, lambda m: m['self_test'].update(rtol=1.0)), 'self_test.rtol'),
    (lambda d: replace_file(d, 'calibration.npy', npy_bytes(np.ones(5)), _m(['calibration'])),
     'at least 20'),
    (lambda d: replace_file(d, 'calibration.npy', npy_bytes(np.full(30, np.nan)),
                            _m(['calibration'])), 'NaN'),
    (lambda d: replace_file(d, 'calibration.npy', npy_bytes(np.arange(30)),
                            _m(['calibration'])), 'float32/float64'),
    (lambda d: replace_file(d, 'calibration.npy', b'\x93NUMPY garbage', _m(['calibration'])),
     'not a NumPy'),
])
def test_damaged_bundles_are_refused_with_file_and_key(bundle_dir, damage, message):
    damage(bundle_dir)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(bundle_dir)
    assert str(bundle_dir) in str(info.value) and '\n' not in str(info.value)
    TAMPER_SEEN.append(message)


TAMPER_SEEN = []


def test_zz_record_the_manifest_cases_in_the_fault_table():
    if TAMPER_SEEN:
        fault_table.record(f'bundle: {len(TAMPER_SEEN)} damaged or mistyped files/fields '
                           '(schema, hashes, paths, NaN, wrong types, short calibration)',
                           'BundleError, one line naming the file and the key',
                           f'{len(TAMPER_SEEN)} of {len(TAMPER_SEEN)} refused that way')


def test_calibration_above_every_score_is_refused(bundle_dir):
    """Calibration scores of 1e30 would make every frame 'in distribution'."""
    replace_file(bundle_dir, 'calibration.npy', npy_bytes(np.full(200, 1e30)),
                 _m(['calibration']))
    with pytest.raises(BundleError, match='nothing could ever be flagged'):
        load_bundle(bundle_dir)
    fault_table.record('bundle: calibration scores 1e30 (file and sha256 replaced)',
                       'refused: nothing could ever be flagged', 'BundleError at load')


@pytest.mark.parametrize('array,value,message', [
    ('chol', lambda a: np.zeros_like(a), 'positive-definite'),          # zeroed precision
    ('chol', lambda a: a.T.copy(), 'lower-triangular'),                 # transposed factor
    ('mean', lambda a: np.full_like(a, np.inf), 'NaN or infinite'),
    ('bank', lambda a: a[:, :2].copy(), 'columns'),
])
def test_insane_statistics_are_refused(fitted_bundle, tmp_path, array, value, message):
    d = tmp_path / 'b'
    shutil.copytree(fitted_bundle, d)
    a = np.load(d / 'head' / f'{array}.npy')
    replace_file(d, f'head/{array}.npy', npy_bytes(value(a)),
                 _m(['detector', 'head', 'arrays', array]))
    with pytest.raises(BundleError, match=message):
        load_bundle(d)
    fault_table.record(f'bundle: head array {array} replaced ({message}), sha256 updated',
                       'refused at load', 'BundleError "' + message + '"')


def test_swapped_statistics_fail_the_known_answer_self_test(fitted_bundle, tmp_path):
    """Plausible but wrong numbers (another place's memory) pass every sanity check.

    The recorded known-answer scores are what catches them.
    """
    d = tmp_path / 'b'
    shutil.copytree(fitted_bundle, d)
    bank = np.load(d / 'head' / 'bank.npy')
    replace_file(d, 'head/bank.npy', npy_bytes(bank[::-1] * 1.3),
                 _m(['detector', 'head', 'arrays', 'bank']))
    det = build_detector(load_bundle(d))
    with pytest.raises(BundleError, match='self-test failed'):
        det.self_test()
    fault_table.record('bundle: memory bank swapped for another (valid arrays, sha256 updated)',
                       'refused by the known-answer self-test', 'BundleError "self-test failed"')


def _edit_graph(d, fn):
    import onnx
    model = onnx.load(str(d / 'encoder.onnx'))
    fn(model)
    data = model.SerializeToString()
    replace_file(d, 'encoder.onnx', data, _m(['graphs', 'detector']))


def _edit_initializer(d, name, change):
    """Replace one weight of the graph by `change(weight)` and re-hash it, as a tamperer would."""
    from onnx import numpy_helper

    def edit(model):
        for init in model.graph.initializer:
            if init.name == name:
                init.CopyFrom(numpy_helper.from_array(
                    change(numpy_helper.to_array(init).copy()), name))
    _edit_graph(d, edit)


def _with_nan(a):
    a.flat[0] = np.nan
    return a


@pytest.mark.parametrize('weight,change,message,case', [
    ('w1', np.zeros_like, 'self-test failed', 'first conv weights zeroed'),
    ('bmu', _with_nan, 'self-test failed.*non-finite', 'a graph that yields NaN'),
])
def test_damaged_weights_fail_the_self_test(bundle_dir, weight, change, message, case):
    _edit_initializer(bundle_dir, weight, change)
    with pytest.raises(BundleError, match=message):
        build_detector(load_bundle(bundle_dir)).self_test()
    fault_table.record(f'bundle: {case} (sha256 updated)',
                       'refused by the known-answer self-test before start-up',
                       f'BundleError "{message.replace(".*", " ... ")}"')


def test_external_data_graph_is_refused(bundle_dir):
    """Weights in a side file would escape the sha256 check: such a graph cannot load."""
    import onnx
    model = onnx.load(str(bundle_dir / 'encoder.onnx'))
    onnx.save_model(model, str(bundle_dir / 'ext.onnx'), save_as_external_data=True,
                    all_tensors_to_one_file=True, location='weights.bin', size_threshold=0)
    replace_file(bundle_dir, 'encoder.onnx', (bundle_dir / 'ext.onnx').read_bytes(),
                 _m(['graphs', 'detector']))
    with pytest.raises(BundleError, match='onnxruntime cannot load'):
        build_detector(load_bundle(bundle_dir))
    fault_table.record('bundle: graph with external-data weights (sha256 updated)',
                       'refused (the side file would escape the hash)',
                       'BundleError: onnxruntime cannot load it from the verified bytes')


@pytest.mark.parametrize('rel', ['encoder.onnx', 'calibration.npy'])
def test_symlinked_files_are_refused(bundle_dir, tmp_path, rel):
    outside = tmp_path / 'outside'
    outside.write_bytes((bundle_dir / rel).read_bytes())
    (bundle_dir / rel).unlink()
    (bundle_dir / rel).symlink_to(outside)
    with pytest.raises(BundleError, match='symbolic link'):
        load_bundle(bundle_dir)
    fault_table.record(f'bundle: {rel} is a symlink out of the bundle', 'refused',
                       'BundleError "symbolic link"')


def test_corrupt_graph_with_matching_hash_is_refused_by_onnxruntime(bundle_dir):
    replace_file(bundle_dir, 'encoder.onnx', b'not a protobuf at all', _m(['graphs', 'detector']))
    with pytest.raises(BundleError, match='onnxruntime cannot load'):
        build_detector(load_bundle(bundle_dir))


def test_graph_is_verified_from_the_bytes_it_loads(bundle_dir):
    """Swapping the file after load_bundle (a check-then-use race) is caught at use."""
    b = load_bundle(bundle_dir)
    (bundle_dir / 'encoder.onnx').write_bytes(b'swapped')
    with pytest.raises(BundleError, match='sha256 mismatch'):
        build_detector(b)


def test_manifest_outputs_must_exist_in_graph(bundle_dir):
    edit_manifest(bundle_dir, lambda m: m['graphs']['detector'].update(
        outputs=['mu', 'logvar', 'z']))
    with pytest.raises(BundleError, match="lacks outputs \\['z'\\]"):
        build_detector(load_bundle(bundle_dir))


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
                     st.text(max_size=8), lambda c: st.lists(c, max_size=3) |
                     st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_manifest_fields_give_a_bundle_error_or_a_valid_bundle(tiny_bundle, tmp_path,
                                                                      data):
    """Any value in any field: either a one-line BundleError or a bundle that loads."""
    m = json.loads((tiny_bundle / 'bundle.json').read_text())
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append(path + [k])
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                paths.append(path + [i])
                walk(v, path + [i])
    walk(m, [])
    path = data.draw(st.sampled_from(paths))
    parent = m
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = data.draw(_JSON)
    d = tmp_path / f'f{abs(hash(str(path))) % 10**8}'
    if not d.exists():
        shutil.copytree(tiny_bundle, d)
    (d / 'bundle.json').write_text(json.dumps(m))
    try:
        b = load_bundle(d)
    except BundleError as exc:
        assert '\n' not in str(exc) and len(str(exc)) < 600
    else:
        assert b.calibration_scores.size >= 20


def test_save_never_deletes_what_is_not_a_bundle(tiny_bundle, tmp_path):
    b = load_bundle(tiny_bundle)
    keep = tmp_path / 'mine'
    keep.mkdir()
    (keep / 'notes.txt').write_text('precious')
    with pytest.raises(BundleError, match='not a bundle'):
        save_bundle(b, keep, force=True)
    assert (keep / 'notes.txt').read_text() == 'precious'
    out = tmp_path / 'copy'
    save_bundle(b, out)
    with pytest.raises(BundleError, match='--force'):
        save_bundle(load_bundle(tiny_bundle), out)
    save_bundle(load_bundle(tiny_bundle), out, force=True)
    assert load_bundle(out).name == 'tiny_test_vae'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]   # no leftovers


def test_a_failed_save_leaves_the_old_bundle_intact(tiny_bundle, tmp_path):
    out = tmp_path / 'b'
    save_bundle(load_bundle(tiny_bundle), out)
    before = (out / 'bundle.json').read_text()
    b = load_bundle(out)
    b.calibration_scores = np.full(200, 1e30)     # refused by the reader, so never written
    with pytest.raises(BundleError):
        save_bundle(b, out)
    assert (out / 'bundle.json').read_text() == before
    load_bundle(out)


def test_require_gpu_without_gpu_provider_is_a_startup_error(tiny_bundle):
    import onnxruntime as ort
    b = load_bundle(tiny_bundle)
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('a GPU provider is installed here')
    be = make_backend(b, device='gpu')          # falls back, and says why
    assert be.fell_back and be.provider == 'CPUExecutionProvider'
    assert 'no GPU provider' in be.fallback_reason and 'onnxruntime-gpu' in be.fallback_reason
    assert build_detector(b, device='gpu').fallback_reason == be.fallback_reason
    with pytest.raises(BackendError, match='require_gpu'):
        make_backend(b, device='gpu', require_gpu=True)
    with pytest.raises(BackendError, match='backend must be one of'):
        make_backend(b, backend='tensorflow')
    with pytest.raises(BackendError, match='no PyTorch twin'):
        make_backend(b, backend='torch')


def test_no_pickle_anywhere_in_the_runtime_package():
    from pathlib import Path
    import leanood_ros
    root = Path(leanood_ros.__file__).parent
    for f in root.rglob('*.py'):
        if 'training' in f.parts:
            continue
        text = f.read_text()
        assert 'import pickle' not in text and 'allow_pickle=True' not in text, f


def test_stored_noise_frame_is_the_pcg64_draw_every_bundle_recorded():
    """The self-test's noise frame is stored (no numpy.random in the node), never redrawn."""
    import subprocess
    import sys
    from leanood_ros.detectors import KNOWN_ANSWER_NOISE, known_answer_frames
    drawn = np.random.default_rng(20261201).integers(0, 256, (96, 128, 3))
    stored = np.load(KNOWN_ANSWER_NOISE, allow_pickle=False)
    assert stored.dtype == np.uint8 and np.array_equal(stored, drawn)
    assert np.array_equal(known_answer_frames()[-1].pixels, drawn)
    code = ('import sys; from leanood_ros.detectors import known_answer_frames; '
            'known_answer_frames(); print("numpy.random" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == 'False'
