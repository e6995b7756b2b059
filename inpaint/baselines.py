"""Classical inpainting a user would otherwise reach for, each given the true mask: the
damaged input as is, OpenCV's Telea and Navier-Stokes methods, scikit-image's biharmonic.

Every pixel the mask touches (mask > 0) is a hole for them; intact pixels are returned as
given. A mask that covers the whole image leaves nothing to inpaint from: the input comes back.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

OPENCV_RADIUS = 3  # pixels around the hole each method looks at (OpenCV's example value)


def _opencv(flag: int):
    def inpaint(damaged: np.ndarray, hole: np.ndarray) -> np.ndarray:
        pixels = np.clip(np.rint(damaged * 255.0), 0, 255).astype(np.uint8)
        painted = cv2.inpaint(pixels, hole.astype(np.uint8), OPENCV_RADIUS, flag)
        return painted.astype(np.float32) / 255.0

    return inpaint


def _biharmonic(damaged: np.ndarray, hole: np.ndarray) -> np.ndarray:
    return inpaint_biharmonic(damaged, hole, channel_axis=-1).astype(np.float32)


METHODS = {
    "telea": _opencv(cv2.INPAINT_TELEA),
    "navier_stokes": _opencv(cv2.INPAINT_NS),
    "biharmonic": _biharmonic,
}
BASELINES = ("input", *METHODS)


def inpaint_classical(name: str, damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Baseline `name` on a damaged float RGB image (H, W, 3) in [0, 1] with its mask (H, W)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
    hole = mask > 0
    if name == "input" or not hole.any() or hole.all():
        return damaged.copy()
    painted = np.clip(METHODS[name](damaged, hole), 0.0, 1.0)
    return np.where(hole[:, :, None], painted, damaged).astype(np.float32)
