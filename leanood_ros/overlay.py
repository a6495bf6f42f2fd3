"""What the monitor sees: the judged frame, downscaled, with its verdict drawn on it.

A verdict-coloured border (green safe, red unsafe), the score against the threshold, the reason
and a strip with the recent score history and the threshold line; for rqt_image_view or
Foxglove on the node's `ood/overlay` topic.  Pure NumPy + OpenCV, no rclpy.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .image_conversion import convert_channels, DecodedImage

SAFE_RGB = (0, 200, 0)
UNSAFE_RGB = (230, 0, 0)
BORDER = 6
STRIP = 40          # height of the score-history strip
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def render(image: DecodedImage, is_safe: bool, score: float, threshold: float, reason: str,
           history, width: int = 320) -> np.ndarray:
    """HxWx3 RGB uint8: the frame scaled to `width`, border, text and score history."""
    rgb = convert_channels(image.pixels, image.channel_order, 'rgb')
    h = max(1, round(image.height * width / image.width))
    frame = cv2.resize(rgb, (width, h), interpolation=cv2.INTER_AREA)
    colour = SAFE_RGB if is_safe else UNSAFE_RGB
    out = np.zeros((h + STRIP, width, 3), np.uint8)
    out[:h] = frame
    _text(out, f"{'SAFE' if is_safe else 'UNSAFE'}  score {score:.4g} / thr {threshold:.4g}",
          (BORDER + 4, BORDER + 16), colour)
    _text(out, reason[:48], (BORDER + 4, BORDER + 34), (255, 255, 255))
    _history(out[h:], list(history), threshold)
    out[:BORDER], out[-BORDER:], out[:, :BORDER], out[:, -BORDER:] = colour, colour, colour, colour
    return out


def _text(img, text, org, colour):
    cv2.putText(img, text, org, _FONT, 0.45, (0, 0, 0), 3, cv2.LINE_AA)   # outline: readable
    cv2.putText(img, text, org, _FONT, 0.45, colour, 1, cv2.LINE_AA)      # on any background


def _history(strip, scores, threshold):
    """Score history as a polyline, scaled so that the threshold sits at mid-height."""
    finite = [s for s in scores if math.isfinite(s)]
    if not finite:
        return
    h, w = strip.shape[:2]
    top = max(max(finite), 2 * threshold if math.isfinite(threshold) else 0, 1e-12)

    def y(v):
        return int(round((h - BORDER - 2) - (min(v, top) / top) * (h - BORDER - 4)))
    if math.isfinite(threshold):
        cv2.line(strip, (BORDER, y(threshold)), (w - BORDER, y(threshold)), (255, 200, 0), 1)
    step = (w - 2 * BORDER) / max(len(scores) - 1, 1)
    pts = [(int(BORDER + i * step), y(s if math.isfinite(s) else top))
           for i, s in enumerate(scores)]
    cv2.polylines(strip, [np.array(pts, np.int32)], False, (255, 255, 255), 1, cv2.LINE_AA)
