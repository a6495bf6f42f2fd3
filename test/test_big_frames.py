"""Big compressed frames decoded at reduced scale: same scores within the bundles' tolerance."""
import dataclasses

import cv2
import numpy as np
import pytest

from bundle_factory import id_frame
from helpers import bombs
from leanood_ros.bundle import load_bundle
from leanood_ros.data.recordings import open_recording
from leanood_ros.decision import DecisionEngine
from leanood_ros.detectors import build_detector
from leanood_ros.image_conversion import decode_compressed, FrameError, to_rgb
from leanood_ros.monitor import MonitorCore

SIZES = [(1920, 1080), (3840, 2160)]
# measured: at most 1.6% (vae_lean at 4K, 1/4 scale; benchmarks/big_frames); the bundles'
# self-test tolerance is 2%
RTOL = 0.02


def _jpeg(bgr, quality=90):
    return cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@pytest.fixture(scope='module')
def big_jpegs():
    """12 frames of the rain sample (in-distribution and rain) upscaled to 1080p and 4K."""
    with open_recording('samples/duckietown_rain') as rec:
        frames = [to_rgb(f.image)[..., ::-1] for f in rec]
    picked = [frames[i] for i in np.linspace(0, len(frames) - 1, 12).astype(int)]
    return {size: [_jpeg(cv2.resize(f, size, interpolation=cv2.INTER_CUBIC)) for f in picked]
            for size in SIZES}


def _area(name):
    """Load a shipped bundle with area resizing: the one interpolation a reduced decode keeps."""
    b = load_bundle(f'models/{name}')
    return dataclasses.replace(
        b, preprocessing=dataclasses.replace(b.preprocessing, interpolation='area'))


@pytest.mark.parametrize('name', ['vae_lean', 'earlin_lite0'])
def test_reduced_decode_keeps_scores(name, big_jpegs):
    bundle = _area(name)
    detector, min_size = build_detector(bundle), bundle.preprocessing.min_decode_size
    reduced = 0
    for (w, h), jpegs in big_jpegs.items():
        for data in jpegs:
            small = decode_compressed('jpeg', data, min_size)
            full = decode_compressed('jpeg', data)
            reduced += small.width < w
            assert small.width == w or (small.width >= min_size[0]
                                        and small.height >= min_size[1])
            want = detector.score(full)
            assert detector.score(small) == pytest.approx(want, rel=RTOL), (w, h, small.width)
    # vae_lean (64x64) decodes 1080p at 1/2 and 4K at 1/4; earlin_lite0 (224x224) needs both
    # sides >= 1792 after reduction, so neither size is reduced
    assert reduced == (24 if name == 'vae_lean' else 0)


def test_reduced_decode_keeps_verdicts(big_jpegs):
    bundle = _area('vae_lean')
    detector = build_detector(bundle)
    min_size = bundle.preprocessing.min_decode_size
    for jpegs in big_jpegs.values():
        cores = [MonitorCore(detector, DecisionEngine(bundle.calibration_scores))
                 for _ in range(2)]
        for data in jpegs:
            small, full = (core.judge(decode_compressed('jpeg', data, size), 0.0)
                           for core, size in zip(cores, [min_size, None]))
            assert np.isfinite(small.score) and small.is_safe == full.is_safe
            assert small.reason.split('(')[0] == full.reason.split('(')[0]


def test_linear_bundles_decode_at_full_size():
    for name in ('vae_lean', 'earlin_lite0'):
        assert load_bundle(f'models/{name}').preprocessing.min_decode_size is None


@pytest.mark.parametrize('size,min_size,expect', [
    ((1920, 1080), (512, 512), (960, 540)),
    ((1920, 1080), (100, 100), (240, 135)),
    ((1921, 1081), (100, 100), (241, 136)),     # libjpeg rounds the reduced size up
    ((1920, 1080), (1000, 100), (1920, 1080)),  # never below min_size in either dimension
    ((640, 480), (320, 241), (640, 480)),
])
def test_reduced_size(size, min_size, expect):
    rng = np.random.default_rng(0)
    bgr = id_frame(rng, size[1], size[0])
    img = decode_compressed('jpeg', _jpeg(bgr), min_size)
    assert (img.width, img.height) == expect and img.channel_order == 'bgr'
    assert img.pixels.dtype == np.uint8 and img.pixels.shape[2] == 3
    mono = decode_compressed('jpeg', _jpeg(bgr[..., 0]), min_size)
    assert mono.pixels.shape == (expect[1], expect[0], 1) and mono.channel_order == 'mono'
    png = decode_compressed('png', cv2.imencode('.png', bgr)[1].tobytes(), min_size)
    assert (png.width, png.height) == size   # only JPEG has a cheap reduced decode


def test_reduced_decode_keeps_the_checks():
    with pytest.raises(FrameError, match='too large'):
        decode_compressed('jpeg', bombs.jpeg_bomb(), (8, 8))
    with pytest.raises(FrameError, match='declares png'):
        decode_compressed('png', _jpeg(np.zeros((64, 64, 3), np.uint8)), (8, 8))
    with pytest.raises(FrameError, match='undecodable'):
        decode_compressed('jpeg', _jpeg(np.zeros((256, 256, 3), np.uint8))[:300], (8, 8))
