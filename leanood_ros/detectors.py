"""One detector interface for every method: frame in, OOD score out (higher = more OOD).

A `BundleDetector` is preprocessing + an inference backend + a score head, all described by the
bundle.  Score heads are tiny NumPy functions of the graph's outputs, so that the fitted numbers
they use live in the bundle manifest and every head runs in float even when the graph is int8.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .bundle import ModelBundle
from .image_conversion import DecodedImage


@dataclass
class Inference:
    score: float
    outputs: dict = field(default_factory=dict)   # raw graph outputs (e.g. a tensor to forward)
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0


def kl_divergence(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Per-dimension KL(N(mu, sigma^2) || N(0, 1)) = 0.5 (mu^2 + sigma^2 - log sigma^2 - 1)."""
    return 0.5 * (np.square(mu) + np.exp(logvar) - logvar - 1.0)


def colour_stats(batch_hwc: np.ndarray) -> np.ndarray:
    """Per-channel mean and standard deviation in [0, 1]: the trivial reference's 6 features."""
    x = batch_hwc.reshape(batch_hwc.shape[0], -1, batch_hwc.shape[-1]).astype(np.float32) / 255.0
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


class ScoreHead:
    def __call__(self, outputs: dict) -> np.ndarray:
        raise NotImplementedError


class KLDivergenceHead(ScoreHead):
    def __init__(self, spec: dict):
        self.mu, self.logvar = spec['mu'], spec['logvar']
        dims = spec.get('dims')
        self.dims = None if dims is None else np.asarray(dims, dtype=np.intp)

    def __call__(self, outputs):
        mu = np.asarray(outputs[self.mu], np.float64)
        lv = np.asarray(outputs[self.logvar], np.float64)
        if self.dims is not None:
            mu, lv = mu[:, self.dims], lv[:, self.dims]
        return kl_divergence(mu, lv).sum(axis=1)


class KLToFittedHead(ScoreHead):
    """KL(N(mu, diag(sigma^2)) || N(m, S)): the divergence of the frame's latent Gaussian from the
    *in-distribution aggregate posterior* N(m, S) fitted on training frames, instead of from the
    prior N(0, I).  With m = 0, S = I it is the prior KL above.
    = 0.5 [tr(S^-1 diag(sigma^2)) + (mu - m)^T S^-1 (mu - m) - k + log det S - sum log sigma^2]"""

    def __init__(self, spec: dict):
        self.mu, self.logvar = spec['mu'], spec['logvar']
        self.mean = np.asarray(spec['mean'], np.float64)
        self.precision = np.asarray(spec['precision'], np.float64)
        self.diag = np.diag(self.precision).copy()
        self.const = float(spec['logdet']) - self.mean.size

    def __call__(self, outputs):
        mu = np.asarray(outputs[self.mu], np.float64)
        lv = np.asarray(outputs[self.logvar], np.float64)
        d = mu - self.mean
        quad = np.einsum('ij,jk,ik->i', d, self.precision, d)
        return 0.5 * (np.exp(lv) @ self.diag + quad + self.const - lv.sum(axis=1))


class GraphOutputHead(ScoreHead):
    def __init__(self, spec: dict):
        self.output = spec['output']

    def __call__(self, outputs):
        return np.asarray(outputs[self.output], np.float64).reshape(-1)


class MahalanobisHead(ScoreHead):
    """Squared Mahalanobis distance to ID statistics fitted offline (stored in the manifest)."""

    def __init__(self, spec: dict):
        self.input = spec['input']
        self.mean = np.asarray(spec['mean'], np.float64)
        self.precision = np.asarray(spec['precision'], np.float64)

    def __call__(self, outputs):
        d = np.asarray(outputs[self.input], np.float64).reshape(-1, self.mean.size) - self.mean
        return np.einsum('ij,jk,ik->i', d, self.precision, d)


_HEADS = {'kl_divergence': KLDivergenceHead, 'kl_to_fitted': KLToFittedHead,
          'graph_output': GraphOutputHead, 'mahalanobis': MahalanobisHead}


class Detector:
    """Base interface.  `infer` judges one frame; `predict` scores many (offline evaluation)."""

    name = 'detector'
    provider = 'none'
    fell_back = False

    def infer(self, image: DecodedImage) -> Inference:
        raise NotImplementedError

    def score(self, image: DecodedImage) -> float:
        return self.infer(image).score

    def predict(self, images) -> np.ndarray:
        return np.array([self.score(im) for im in images], dtype=np.float64)

    def warm_up(self, runs: int = 2) -> float:
        """Run the model on blank frames before the first camera frame arrives (the first
        ONNX Runtime run allocates its memory and is many times slower than the next ones, long
        enough to make the node skip the frames behind it).  Returns the first run's ms."""
        return 0.0


class BundleDetector(Detector):
    def __init__(self, bundle: ModelBundle, backend=None):
        self.bundle = bundle
        self.name = bundle.name
        self.preprocessing = bundle.preprocessing
        self.head = _HEADS[bundle.head['type']](bundle.head)
        self.backend = backend
        self._builtin = bundle.head.get('input') == 'colour_stats'
        if backend is None and not self._builtin:
            raise ValueError(f'bundle {bundle.name} needs an inference backend')

    @property
    def provider(self) -> str:
        return self.backend.provider if self.backend is not None else 'numpy'

    @property
    def fell_back(self) -> bool:
        return bool(self.backend is not None and self.backend.fell_back)

    def _outputs(self, batch_hwc: np.ndarray) -> dict:
        if self._builtin:
            return {'colour_stats': colour_stats(batch_hwc)}
        return self.backend.run(self.preprocessing.normalize(batch_hwc))

    def infer(self, image: DecodedImage) -> Inference:
        t0 = time.perf_counter()
        resized = self.preprocessing.resize(image)[None]
        t1 = time.perf_counter()
        outputs = self._outputs(resized)
        t2 = time.perf_counter()
        score = float(self.head(outputs)[0])
        if not np.isfinite(score):
            raise FloatingPointError(f'detector {self.name} produced a non-finite score')
        return Inference(score, outputs, (t1 - t0) * 1e3, (t2 - t1) * 1e3)

    def warm_up(self, runs: int = 2) -> float:
        # the whole path a camera frame takes (OpenCV's resize also initialises on first use)
        blank = DecodedImage(np.zeros((480, 640, 3), np.uint8), 'rgb')
        first = 0.0
        for i in range(runs):
            t0 = time.perf_counter()
            self.predict_resized(self.preprocessing.resize(blank)[None])  # score not checked
            if i == 0:
                first = (time.perf_counter() - t0) * 1e3
        return first

    def outputs_resized(self, batch_hwc: np.ndarray) -> dict:
        """Raw graph outputs for frames already resized (to fit a head's statistics)."""
        return self._outputs(batch_hwc)

    def predict_resized(self, batch_hwc: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Scores for frames already resized to the bundle's input size (fast offline path)."""
        out = [self.head(self._outputs(batch_hwc[i:i + batch_size]))
               for i in range(0, len(batch_hwc), batch_size)]
        return np.concatenate(out) if out else np.zeros(0)


def build_detector(bundle: ModelBundle, backend: str = 'onnxruntime', device: str = 'cpu',
                   threads: int = 1, require_gpu: bool = False) -> BundleDetector:
    """The one way the node and the tools turn a bundle into a detector."""
    be = None
    if 'detector' in bundle.graphs:
        from .backends import make_backend
        be = make_backend(bundle, 'detector', backend, device, threads, require_gpu)
    return BundleDetector(bundle, be)
