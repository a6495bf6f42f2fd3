"""Frame -> model input tensor, exactly as the bundle describes it.

Training code and the runtime node both call `Preprocessing.__call__`, so a model always sees
frames prepared the way it was fitted on them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .image_conversion import convert_channels, DecodedImage

_INTERPOLATION = {'area': cv2.INTER_AREA, 'linear': cv2.INTER_LINEAR,
                  'nearest': cv2.INTER_NEAREST, 'cubic': cv2.INTER_CUBIC}
# A JPEG decoded at reduced scale (a block average) and then area-resized scores within 1.6%
# of the full decode while it keeps 8x the input size; at 4x it drifts to 3.6%, beyond the
# bundles' 2% self-test tolerance (benchmarks/big_frames).
REDUCED_DECODE_MARGIN = 8


@dataclass(frozen=True)
class Preprocessing:
    """Resize to width x height, order colours, scale to [0, 1], then (x - mean) / std, NCHW."""

    width: int
    height: int
    color_order: str = 'rgb'
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    interpolation: str = 'area'

    def __post_init__(self):
        problems = []
        if not (isinstance(self.width, int) and isinstance(self.height, int)
                and 8 <= self.width <= 4096 and 8 <= self.height <= 4096):
            problems.append(f'input size {self.width}x{self.height} must be integers in 8..4096')
        if self.color_order not in ('rgb', 'bgr'):
            problems.append(f"color_order must be 'rgb' or 'bgr', got {self.color_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            problems.append('mean and std need 3 values each')
        elif (not all(np.isfinite(self.mean))
              or not all(s > 0 and np.isfinite(s) for s in self.std)):
            problems.append('mean must be finite and std positive')
        if self.interpolation not in _INTERPOLATION:
            problems.append(f'interpolation must be one of {sorted(_INTERPOLATION)}')
        if problems:
            raise ValueError('invalid preprocessing: ' + '; '.join(problems))
        # Fold /255, mean and std into one multiply-add per channel.
        std = np.asarray(self.std, np.float32)
        object.__setattr__(self, '_scale', (1.0 / (255.0 * std)).reshape(3, 1, 1))
        object.__setattr__(self, '_bias',
                           (-np.asarray(self.mean, np.float32) / std).reshape(3, 1, 1))

    @classmethod
    def from_dict(cls, d: dict) -> 'Preprocessing':
        size = d.get('input_size')
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            raise ValueError('preprocessing.input_size must be [height, width]')
        return cls(height=size[0], width=size[1], color_order=d.get('color_order', 'rgb'),
                   mean=tuple(d.get('mean', (0.0, 0.0, 0.0))),
                   std=tuple(d.get('std', (1.0, 1.0, 1.0))),
                   interpolation=d.get('interpolation', 'area'))

    def to_dict(self) -> dict:
        return {'input_size': [self.height, self.width], 'color_order': self.color_order,
                'mean': [float(m) for m in self.mean], 'std': [float(s) for s in self.std],
                'interpolation': self.interpolation, 'layout': 'NCHW', 'dtype': 'float32'}

    @property
    def min_decode_size(self) -> tuple | None:
        """(width, height) a JPEG may be decoded down to; None: decode at full size.

        Only 'area' resizing averages like the reduced decode does: 'linear' (and 'nearest',
        'cubic') read a few source pixels per output pixel, so a smaller decode changes scores
        far beyond tolerance (up to 40% at half scale).
        """
        if self.interpolation != 'area':
            return None
        return self.width * REDUCED_DECODE_MARGIN, self.height * REDUCED_DECODE_MARGIN

    def resize(self, image: DecodedImage) -> np.ndarray:
        """Resize to HxWx3 uint8 in the model's colour order (resize first: the cheap order)."""
        px = image.pixels
        if px.shape[0] != self.height or px.shape[1] != self.width:
            px = cv2.resize(px, (self.width, self.height),
                            interpolation=_INTERPOLATION[self.interpolation])
        return convert_channels(px, image.channel_order, self.color_order)

    def __call__(self, image: DecodedImage) -> np.ndarray:
        """1x3xHxW float32 tensor."""
        return self.normalize(self.resize(image)[None])

    def normalize(self, batch_hwc: np.ndarray) -> np.ndarray:
        """NxHxWx3 uint8 (already resized, model colour order) -> Nx3xHxW float32."""
        # cast, scale and NHWC -> NCHW in one pass, into the C-contiguous array onnxruntime
        # takes without a copy of its own (3x faster than astype + *=, same values)
        x = np.multiply(batch_hwc.transpose(0, 3, 1, 2), self._scale, dtype=np.float32,
                        order='C')
        x += self._bias
        return x
