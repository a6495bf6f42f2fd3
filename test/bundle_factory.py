"""Build tiny but real model bundles for tests.

A randomly initialised conv encoder written as an ONNX graph (with the `onnx` package only, so
the suite runs without torch), calibrated on synthetic 'road-like' frames through the real
detector code path.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from leanood_ros.bundle import ModelBundle, save_bundle
from leanood_ros.calibration import calibrate, fit_head
from leanood_ros.heads import KLPriorHead
from leanood_ros.image_conversion import from_array

INPUT = 32
LATENT = 8


def id_frame(rng, h=120, w=160) -> np.ndarray:
    """Smooth colour gradients with mild noise: stands in for in-distribution camera frames."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(90, 120, 3)
    slope = rng.uniform(-0.15, 0.15, (2, 3))
    img = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ood_frame(rng, h=120, w=160) -> np.ndarray:
    """Make a saturated magenta colour cast with noise: far from the ID frames for this encoder.

    (Full-range pixel noise is not: a random encoder averages it away, as a real VAE does.)
    """
    img = np.array([255.0, 0.0, 255.0]) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _encoder_graph(path: Path, seed: int = 0) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)

    def init(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32),
                                       name)
    inits = [init('w1', (8, 3, 3, 3), 0.3), init('b1', (8,), 0.05),
             init('w2', (16, 8, 3, 3), 0.15), init('b2', (16,), 0.05),
             init('wmu', (16, LATENT), 0.5), init('bmu', (LATENT,), 0.1),
             init('wlv', (16, LATENT), 0.2), init('blv', (LATENT,), 0.1)]
    nodes = [
        helper.make_node('Conv', ['image', 'w1', 'b1'], ['c1'], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c1'], ['r1']),
        helper.make_node('Conv', ['r1', 'w2', 'b2'], ['c2'], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c2'], ['r2']),
        helper.make_node('GlobalAveragePool', ['r2'], ['g']),
        helper.make_node('Flatten', ['g'], ['f']),
        helper.make_node('Gemm', ['f', 'wmu', 'bmu'], ['mu']),
        helper.make_node('Gemm', ['f', 'wlv', 'blv'], ['logvar_raw']),
        helper.make_node('Tanh', ['logvar_raw'], ['logvar']),
    ]
    graph = helper.make_graph(
        nodes, 'tiny_encoder',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, INPUT, INPUT])],
        [helper.make_tensor_value_info('mu', TensorProto.FLOAT, ['batch', LATENT]),
         helper.make_tensor_value_info('logvar', TensorProto.FLOAT, ['batch', LATENT])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_tiny_bundle(directory: Path, n_calibration: int = 200, seed: int = 0,
                     decision: dict | None = None, head=None) -> Path:
    """Write a complete vae-family bundle into `directory` and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _encoder_graph(directory / 'encoder.onnx', seed)
    manifest = {
        'name': 'tiny_test_vae',
        'description': 'Randomly initialised 2-layer conv encoder for tests '
                       '(not a real detector).',
        'detector': {'family': 'vae'},
        'graphs': {'detector': {'file': 'encoder.onnx', 'input': 'image',
                                'outputs': ['mu', 'logvar']}},
        'preprocessing': {'input_size': [INPUT, INPUT], 'color_order': 'rgb',
                          'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25],
                          'interpolation': 'area'},
        'provenance': {'data': 'synthetic', 'command': 'test/bundle_factory.py', 'date': 'test'},
        'metrics': {},
    }
    if decision:
        manifest['decision'] = decision
    bundle = ModelBundle.draft(directory, manifest, head or KLPriorHead())
    rng = np.random.default_rng(seed + 1)
    frames = np.stack([bundle.preprocessing.resize(from_array(id_frame(rng)))
                       for _ in range(n_calibration)])
    if bundle.head.fitted:
        fit_head(bundle, frames[: n_calibration // 2])
        frames = frames[n_calibration // 2:]
    calibrate(bundle, frames, 'synthetic smooth frames')
    save_bundle(bundle, directory)
    return directory


def edit_manifest(d: Path, fn) -> None:
    """Change a bundle's bundle.json in place with fn(manifest)."""
    m = json.loads((d / 'bundle.json').read_text())
    fn(m)
    (d / 'bundle.json').write_text(json.dumps(m))


def replace_file(d: Path, rel: str, data: bytes, key) -> None:
    """Tamper like someone who knows the format: new bytes *and* a matching sha256."""
    (d / rel).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    edit_manifest(d, lambda m: key(m).update(sha256=digest))
