"""Benign camera differences: another robot's camera on the same scene, still in distribution.

What such a camera does without making the scene out of distribution: another resolution
(320x240 to 1280x720), another JPEG quality (60-95), a little more or less exposure, another
white balance.

Used offline to make bundles robust out of the box: their memory and calibration see these
variants of the in-distribution frames, so that a user's camera is not a false alarm by itself.
The ranges are deliberately mild next to the shifts in `shifts.py` (night is a gamma of 1.7-2.0,
here at most 1.15).  albumentations, offline only.
"""
from __future__ import annotations

import numpy as np

RESOLUTIONS = ((320, 240), (424, 240), (640, 360), (640, 480), (800, 600), (1280, 720))
JPEG_QUALITY = (60, 95)


def _pipeline(seed: int):
    import albumentations as A
    return A.Compose([
        A.RandomBrightnessContrast(brightness_limit=0.08, contrast_limit=0.08, p=1.0),
        A.RandomGamma(gamma_limit=(88, 115), p=1.0),
        # white balance: one gain per channel for the whole frame
        A.MultiplicativeNoise(multiplier=(0.93, 1.07), per_channel=True, elementwise=False, p=1.0),
        A.ImageCompression(quality_range=JPEG_QUALITY, p=1.0),
    ], seed=seed)


class BenignCamera:
    """Callable RGB uint8 frame -> the same frame as another camera would deliver it.

    Another resolution and aspect, JPEG quality, exposure, white balance; reproducible from its
    seed.
    """

    def __init__(self, seed: int = 0):
        self._pipe = _pipeline(seed)
        self._rng = np.random.default_rng(seed)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2
        w, h = RESOLUTIONS[self._rng.integers(len(RESOLUTIONS))]
        if (w, h) != (rgb.shape[1], rgb.shape[0]):
            # another sensor: a centre crop to its aspect ratio, then its pixel count
            aspect = w / h
            H, W = rgb.shape[:2]
            cw, ch = (W, int(round(W / aspect))) if W / H < aspect else (int(round(H * aspect)), H)
            y0, x0 = (H - ch) // 2, (W - cw) // 2
            rgb = cv2.resize(rgb[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA
                             if w < cw else cv2.INTER_LINEAR)
        return self._pipe(image=np.ascontiguousarray(rgb))['image']


def benign_frames(paths, pre, variants: int = 1, stride: int = 1, seed: int = 0):
    """Make `variants` benign copies of every `stride`-th frame of ID recordings.

    Resized as the bundle's preprocessing does (N x H x W x 3, model colour order).
    """
    from tqdm import tqdm
    from ..image_conversion import DecodedImage, to_rgb
    from .recordings import open_recording
    cam = BenignCamera(seed)
    out = []
    for path in tqdm(list(paths), desc='benign camera variants', unit='rec', leave=False):
        with open_recording(path) as rec:
            for i, frame in enumerate(rec):
                if i % stride:
                    continue
                rgb = to_rgb(frame.image)
                for _ in range(variants):
                    out.append(pre.resize(DecodedImage(cam(rgb), 'rgb')))
    return np.stack(out) if out else np.zeros((0, pre.height, pre.width, 3), np.uint8)


class FixedCamera:
    """Draw one benign camera for a whole recording (a real camera does not change per frame).

    A resolution, JPEG quality, exposure and white balance drawn once from the same ranges.
    """

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.size = RESOLUTIONS[rng.integers(len(RESOLUTIONS))]
        self.quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        self.gamma = float(rng.uniform(0.88, 1.15))
        self.gain = float(rng.uniform(0.92, 1.08)) * rng.uniform(0.93, 1.07, 3)

    def describe(self) -> str:
        return (f'{self.size[0]}x{self.size[1]}, JPEG q{self.quality}, gamma {self.gamma:.2f}, '
                f'RGB gains {np.round(self.gain, 3).tolist()}')

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2
        w, h = self.size
        H, W = rgb.shape[:2]
        aspect = w / h
        cw, ch = (W, int(round(W / aspect))) if W / H < aspect else (int(round(H * aspect)), H)
        y0, x0 = (H - ch) // 2, (W - cw) // 2
        img = cv2.resize(rgb[y0:y0 + ch, x0:x0 + cw], (w, h),
                         interpolation=cv2.INTER_AREA if w < cw else cv2.INTER_LINEAR)
        x = np.power(img.astype(np.float32) / 255.0, self.gamma) * self.gain * 255.0
        img = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def write_benign_copies(paths, out_root, seed: int = 0) -> list:
    """Write each ID recording as another camera would have recorded it.

    An image folder per recording (`<name>_cam<seed>`, PNG frames, the recording's labels), and a
    `camera.txt`.
    """
    import cv2
    from pathlib import Path
    from ..image_conversion import to_rgb
    from .recordings import open_recording
    out = []
    for k, path in enumerate(paths):
        cam = FixedCamera(seed * 1000 + k)
        d = Path(out_root) / f'{Path(path).name}_cam{seed}'
        d.mkdir(parents=True, exist_ok=True)
        rows = ['frame,ood']
        with open_recording(path) as rec:
            for i, frame in enumerate(rec):
                name = f'{i:05d}.png'
                cv2.imwrite(str(d / name), cv2.cvtColor(cam(to_rgb(frame.image)),
                                                        cv2.COLOR_RGB2BGR))
                if frame.label is not None:
                    rows.append(f'{name},{int(bool(frame.is_ood))}')
        if len(rows) > 1:
            (d / 'labels.csv').write_text('\n'.join(rows) + '\n')
        (d / 'camera.txt').write_text(cam.describe() + '\n')
        out.append(d)
    return out
