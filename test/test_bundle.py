import json
import shutil

import numpy as np
import pytest

from leanood_ros.backends import BackendError, make_backend
from leanood_ros.bundle import BundleError, load_bundle, resolve_bundle_path
from leanood_ros.detectors import build_detector
from leanood_ros.image_conversion import from_array


@pytest.fixture
def bundle_dir(tiny_bundle, tmp_path):
    d = tmp_path / 'b'
    shutil.copytree(tiny_bundle, d)
    return d


def edit_manifest(d, fn):
    m = json.loads((d / 'bundle.json').read_text())
    fn(m)
    (d / 'bundle.json').write_text(json.dumps(m))


def test_tiny_bundle_loads_and_scores(tiny_bundle):
    b = load_bundle(tiny_bundle)
    assert b.family == 'vae' and b.calibration_scores.size == 200
    assert np.all(np.diff(b.calibration_scores) >= 0)
    det = build_detector(b)
    s = det.score(from_array(np.full((50, 60, 3), 100, np.uint8)))
    assert np.isfinite(s) and s >= 0


@pytest.mark.parametrize('model', ['vae_lean', 'earlin_lite0'])
def test_warm_up_runs_the_model_and_leaves_scores_unchanged(model):
    det = build_detector(load_bundle(model))
    frame = from_array(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cold = det.score(frame)
    assert det.warm_up() > 0.0
    assert det.score(frame) == pytest.approx(cold, rel=1e-6)


def test_variant_names_resolve_under_models_dir(tiny_bundle):
    assert load_bundle('tiny', models_dir=tiny_bundle.parent).name == 'tiny_test_vae'
    assert resolve_bundle_path('vae_lean', tiny_bundle.parent) == tiny_bundle.parent / 'vae_lean'


@pytest.mark.parametrize('damage,message', [
    (lambda d: (d / 'encoder.onnx').unlink(), "graph file 'detector' is missing"),
    (lambda d: (d / 'encoder.onnx').write_bytes((d / 'encoder.onnx').read_bytes() + b'x'),
     'sha256 mismatch'),
    (lambda d: (d / 'bundle.json').unlink(), 'missing manifest'),
    (lambda d: (d / 'bundle.json').write_text('[1, 2'), 'not readable JSON'),
    (lambda d: (d / 'bundle.json').write_bytes(b'\xff\xfe\x00'), 'not readable JSON'),
    (lambda d: edit_manifest(d, lambda m: m.update(format='other')), 'not a leanood bundle'),
    (lambda d: edit_manifest(d, lambda m: m.update(format_version=99)), 'format_version'),
    (lambda d: edit_manifest(d, lambda m: m.pop('provenance')), "missing key 'provenance'"),
    (lambda d: edit_manifest(d, lambda m: m['detector'].update(family='magic')), 'detector.family'),
    (lambda d: edit_manifest(d, lambda m: m['detector']['head'].update(type='x')), 'head.type'),
    (lambda d: edit_manifest(d, lambda m: m['detector']['head'].update(mu='nope')), 'head.mu'),
    (lambda d: edit_manifest(d, lambda m: m['calibration'].update(scores=[1.0] * 5)),
     'at least 20'),
    (lambda d: edit_manifest(d, lambda m: m['calibration'].update(scores=['a'] * 30)),
     'list of numbers'),
    (lambda d: edit_manifest(d, lambda m: m['calibration'].update(scores=[float('nan')] * 30)),
     'NaN'),
    (lambda d: edit_manifest(d, lambda m: m['preprocessing'].update(input_size=[3])),
     'input_size'),
    (lambda d: edit_manifest(d, lambda m: m['preprocessing'].update(color_order='xyz')),
     'color_order'),
    (lambda d: edit_manifest(d, lambda m: m['graphs']['detector'].update(file='../x.onnx')),
     'inside the bundle'),
])
def test_damaged_bundles_are_refused_with_file_and_problem(bundle_dir, damage, message):
    damage(bundle_dir)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(bundle_dir)
    assert str(bundle_dir) in str(info.value)


def test_corrupt_graph_with_matching_hash_is_refused_by_onnxruntime(bundle_dir):
    (bundle_dir / 'encoder.onnx').write_bytes(b'not a protobuf at all')
    b = load_bundle(bundle_dir, verify_hashes=False)
    with pytest.raises(BundleError, match='onnxruntime cannot load'):
        build_detector(b)


def test_manifest_outputs_must_exist_in_graph(bundle_dir):
    edit_manifest(bundle_dir, lambda m: m['graphs']['detector'].update(outputs=['mu', 'logvar', 'z']))
    with pytest.raises(BundleError, match="lacks outputs \\['z'\\]"):
        build_detector(load_bundle(bundle_dir))


def test_require_gpu_without_gpu_provider_is_a_startup_error(tiny_bundle):
    import onnxruntime as ort
    b = load_bundle(tiny_bundle)
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('a GPU provider is installed here')
    be = make_backend(b, device='gpu')          # falls back, and says so
    assert be.fell_back and be.provider == 'CPUExecutionProvider'
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


def test_kl_to_fitted_head_reduces_to_prior_kl_and_is_validated(bundle_dir):
    from leanood_ros.detectors import KLDivergenceHead, KLToFittedHead
    rng = np.random.default_rng(0)
    out = {'mu': rng.normal(size=(5, 8)), 'logvar': rng.normal(size=(5, 8)) * 0.3}
    prior = KLToFittedHead({'mu': 'mu', 'logvar': 'logvar', 'mean': [0.0] * 8,
                            'precision': np.eye(8).tolist(), 'logdet': 0.0})
    ref = KLDivergenceHead({'mu': 'mu', 'logvar': 'logvar'})
    np.testing.assert_allclose(prior(out), ref(out), rtol=1e-10)
    # against a closed form computed another way: KL between diagonal and full Gaussians
    A = rng.normal(size=(8, 8))
    S = A @ A.T + 8 * np.eye(8)
    m = rng.normal(size=8)
    head = KLToFittedHead({'mu': 'mu', 'logvar': 'logvar', 'mean': m.tolist(),
                           'precision': np.linalg.inv(S).tolist(),
                           'logdet': float(np.linalg.slogdet(S)[1])})
    mu, var = out['mu'][0], np.exp(out['logvar'][0])
    Si = np.linalg.inv(S)
    kl = 0.5 * (np.trace(Si @ np.diag(var)) + (m - mu) @ Si @ (m - mu) - 8
                + np.linalg.slogdet(S)[1] - np.log(var).sum())
    assert head(out)[0] == pytest.approx(kl)
    edit_manifest(bundle_dir, lambda m_: m_['detector'].update(
        head={'type': 'kl_to_fitted', 'mu': 'mu', 'logvar': 'logvar', 'mean': [0.0] * 3,
              'precision': [[1.0]], 'logdet': 0.0}))
    with pytest.raises(BundleError, match='logdet'):
        load_bundle(bundle_dir)
