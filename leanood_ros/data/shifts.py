"""Distribution shifts applied to camera frames after rendering/recording, with albumentations.

Used by the dataset generator (test and validation sequences where a shift starts part-way) and by
`camera_replay`'s live shift injection.  Severities are fixed per shift so that a dataset is
reproducible; each frame gets its own random draw (rain streaks move, noise changes).
Offline tooling only: albumentations is not a runtime dependency of the monitor.
"""
from __future__ import annotations

import numpy as np

# name -> (description, factory of an albumentations pipeline)
SHIFT_DESCRIPTIONS = {
    'rain': 'heavy rain streaks, dimmed and blurred (RandomRain)',
    'dark': 'night: strong gamma darkening, reduced contrast, low-light sensor noise',
    'fog': 'fog (RandomFog)',
    'glare': 'sun flare / glare (RandomSunFlare)',
    'blur': 'motion blur (MotionBlur, kernel 11-17)',
    'noise': 'sensor noise (GaussNoise + ISONoise)',
    'snow': 'snow (RandomSnow)',
}
SHIFTS = tuple(SHIFT_DESCRIPTIONS)


def _pipeline(name: str, seed: int):
    import albumentations as A
    if name == 'rain':
        t = [A.RandomRain(slant_range=(-12, 12), drop_length=None, drop_width=1,
                          drop_color=(190, 190, 190), blur_value=3, brightness_coefficient=0.8,
                          rain_type='heavy', p=1.0)]
    elif name == 'dark':
        t = [A.RandomGamma(gamma_limit=(170, 200), p=1.0),
             A.RandomBrightnessContrast(brightness_limit=(0.0, 0.0),
                                        contrast_limit=(-0.2, -0.1), p=1.0),
             A.GaussNoise(std_range=(0.015, 0.03), p=1.0)]
    elif name == 'fog':
        t = [A.RandomFog(alpha_coef=0.1, fog_coef_range=(0.5, 0.7), p=1.0)]
    elif name == 'glare':
        t = [A.RandomSunFlare(flare_roi=(0.2, 0.0, 0.8, 0.4), src_radius=400,
                              num_flare_circles_range=(8, 12), method='physics_based', p=1.0)]
    elif name == 'blur':
        t = [A.MotionBlur(blur_limit=(11, 17), p=1.0)]
    elif name == 'noise':
        t = [A.GaussNoise(std_range=(0.08, 0.12), p=1.0),
             A.ISONoise(color_shift=(0.02, 0.05), intensity=(0.3, 0.5), p=1.0)]
    elif name == 'snow':
        t = [A.RandomSnow(brightness_coeff=2.0, snow_point_range=(0.3, 0.4), method='texture',
                          p=1.0)]
    else:
        raise ValueError(f"unknown shift '{name}' (known: {', '.join(SHIFTS)})")
    return A.Compose(t, seed=seed)


class Shift:
    """Callable RGB uint8 frame -> shifted RGB uint8 frame, reproducible from its seed."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self._pipe = _pipeline(name, seed)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self._pipe(image=np.ascontiguousarray(rgb))['image']
