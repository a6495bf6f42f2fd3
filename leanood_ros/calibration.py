"""Fit and calibrate a bundle in memory, through the same detector code the node runs.

Every tool that makes a bundle (export, compress, quantize, refit, adapt, earlin export) goes
through these three steps on a `ModelBundle.draft`, then `save_bundle` writes it once:

    fit_head(bundle, fit_images)          ID statistics of the score head (ID frames only)
    calibrate(bundle, calib_images, src)  ID calibration scores + the known-answer self-test
    (evaluation.tune.tune_bundle)         recommended decision settings from ID sequences
"""
from __future__ import annotations

import numpy as np

from .bundle import KNOWN_ANSWER_FRAMES, ModelBundle
from .detectors import build_detector, BundleDetector

SELF_TEST_RTOL = 0.02   # fp32 CPU builds agree to ~1e-6; fp16 / TensorRT need more room


def head_inputs(detector: BundleDetector, images: np.ndarray, batch: int = 32,
                progress: str | None = None) -> dict:
    """Return the graph outputs a head reads, for many frames already resized to the input size."""
    from tqdm import tqdm
    names = detector.head.inputs
    parts = {n: [] for n in names}
    steps = range(0, len(images), batch)
    for i in tqdm(steps, desc=progress, unit='batch', leave=False, disable=progress is None):
        out = detector.outputs_resized(images[i:i + batch])
        for n in names:
            parts[n].append(np.asarray(out[n]))
    return {n: np.concatenate(v) if v else np.zeros((0,)) for n, v in parts.items()}


def fit_head(bundle: ModelBundle, images: np.ndarray, threads: int = 2) -> None:
    """Fit the bundle's head on in-distribution frames (there is no label argument)."""
    det = build_detector(bundle, threads=threads)
    bundle.head.fit(head_inputs(det, images, progress='fitting the head'))


def calibrate(bundle: ModelBundle, images: np.ndarray | None, source: str, threads: int = 2,
              detector: BundleDetector | None = None,
              scores: np.ndarray | None = None) -> np.ndarray:
    """Score held-out ID frames (the conformal calibration set) and record the self-test.

    `scores` instead of `images`: the frames were already scored by this bundle's detector.
    """
    det = detector or build_detector(bundle, threads=threads)
    scores = det.predict_resized(images) if scores is None else np.asarray(scores, np.float64)
    if scores.size and not np.all(np.isfinite(scores)):
        raise ValueError(f'bundle {bundle.name}: non-finite scores on calibration frames')
    bundle.calibration_scores = np.sort(scores)
    bundle.manifest['calibration'] = {'source': source}
    bundle.manifest['self_test'] = {'frames': KNOWN_ANSWER_FRAMES,
                                    'scores': [float(s) for s in det.known_answers()],
                                    'rtol': SELF_TEST_RTOL}
    return scores
