"""One detector interface for every method: frame in, OOD score out (higher = more OOD).

A `BundleDetector` is preprocessing + an inference backend + a score head (`heads.py`), all
described by the bundle.  Heads are NumPy functions of the graph's outputs: their fitted arrays
travel with the bundle, and every head runs in float even when the graph is int8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import time

import numpy as np

from .bundle import BundleError, ModelBundle
from .image_conversion import DecodedImage


@dataclass
class Inference:
    score: float
    outputs: dict = field(default_factory=dict)   # raw graph outputs (e.g. a tensor to forward)
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0


def colour_stats(batch_hwc: np.ndarray) -> np.ndarray:
    """Per-channel mean and standard deviation in [0, 1]: the trivial reference's 6 features."""
    x = batch_hwc.reshape(batch_hwc.shape[0], -1, batch_hwc.shape[-1]).astype(np.float32) / 255.0
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


KNOWN_ANSWER_NOISE = Path(__file__).with_name('known_answer_noise.npy')


def known_answer_frames() -> list:
    """Deterministic 96x128 RGB frames whose scores a bundle records when it is written.

    The bundle records them (`self_test`) and the node reproduces them before it trusts the
    bundle.  Far from any camera's normal view on purpose, so that a calibration that could never
    flag them is refused.
    """
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1),
                         np.full_like(xx, 128)], axis=-1)
    checker = (((yy // 8) + (xx // 8)) % 2 * 255)[..., None].repeat(3, axis=2)
    # PCG64(20261201).integers(0, 256, (96, 128, 3)), stored: drawing it at run time would load
    # numpy.random into the node for this one frame (2.2 MB RSS); a test keeps the two equal
    noise = np.load(KNOWN_ANSWER_NOISE, allow_pickle=False)
    flat = [np.full((h, w, 3), v) for v in ((0, 0, 0), (255, 255, 255), (255, 0, 255))]
    return [DecodedImage(np.ascontiguousarray(f, dtype=np.uint8), 'rgb')
            for f in (*flat, gradient, checker, noise)]


class Detector:
    """Base interface.  `infer` judges one frame; `predict` scores many (offline evaluation)."""

    name = 'detector'
    provider = 'none'
    fell_back = False
    fallback_reason = ''

    def infer(self, image: DecodedImage) -> Inference:
        raise NotImplementedError

    def score(self, image: DecodedImage) -> float:
        return self.infer(image).score

    def predict(self, images) -> np.ndarray:
        return np.array([self.score(im) for im in images], dtype=np.float64)

    def warm_up(self, runs: int = 2) -> float:
        """Run the model on blank frames before the first camera frame arrives.

        The first ONNX Runtime run allocates its memory and is many times slower than the next
        ones, long enough to make the node skip the frames behind it.  Returns the first run's ms.
        """
        return 0.0


class BundleDetector(Detector):
    def __init__(self, bundle: ModelBundle, backend=None):
        self.bundle = bundle
        self.name = bundle.name
        self.preprocessing = bundle.preprocessing
        self.head = bundle.head
        self.backend = backend
        self._builtin = 'colour_stats' in self.head.inputs
        if backend is None and not self._builtin:
            raise ValueError(f'bundle {bundle.name} needs an inference backend')

    @property
    def provider(self) -> str:
        return self.backend.provider if self.backend is not None else 'numpy'

    @property
    def fell_back(self) -> bool:
        return bool(self.backend is not None and self.backend.fell_back)

    @property
    def fallback_reason(self) -> str:
        return getattr(self.backend, 'fallback_reason', '') if self.fell_back else ''

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
        score = float(self.head.score(outputs)[0])
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
        out = [self.head.score(self._outputs(batch_hwc[i:i + batch_size]))
               for i in range(0, len(batch_hwc), batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    def known_answers(self) -> np.ndarray:
        """Scores of `known_answer_frames` through the whole frame path."""
        return np.array([self.infer(f).score for f in known_answer_frames()])

    def self_test(self) -> None:
        """Reproduce the scores the bundle recorded when it was written, or refuse it."""
        st = self.bundle.manifest['self_test']
        want = np.asarray(st['scores'], np.float64)
        try:
            got = self.known_answers()
        except Exception as exc:
            why = ' '.join(str(exc).split())       # one line (onnxruntime's span several)
            raise BundleError(f'{self.bundle.path}: self-test failed: {type(exc).__name__}: '
                              f'{why[:300]}') from exc
        if got.shape != want.shape or not np.allclose(got, want, rtol=st['rtol'], atol=0.0):
            raise BundleError(
                f'{self.bundle.path}: self-test failed: known-answer scores '
                f'{np.array2string(got, precision=4)} != recorded '
                f'{np.array2string(want, precision=4)} (rtol {st["rtol"]:g}): the graph, its '
                f'statistics or this onnxruntime do not compute what the bundle was made with')


def build_detector(bundle: ModelBundle, backend: str = 'onnxruntime', device: str = 'cpu',
                   threads: int = 1, require_gpu: bool = False) -> BundleDetector:
    """Turn a bundle into a detector: the one way the node and the tools do it."""
    be = None
    if 'detector' in bundle.graphs:
        from .backends import make_backend
        be = make_backend(bundle, 'detector', backend, device, threads, require_gpu)
    return BundleDetector(bundle, be)
