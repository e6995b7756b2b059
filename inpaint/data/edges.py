"""Canny edges that never see hole pixels: a tensor path (kornia) and a worker path (OpenCV).

Both paths smooth with a mask-normalised Gaussian, `G*(x * w) / G*w` with `w = 1 - mask`, so
hole pixels carry no weight, then run Canny without further blur and zero the edges inside
the hole. Thresholds compare against the unnormalised Sobel magnitude of an image in
[0, 1] (kornia's convention; OpenCV's on 8-bit pixels is 255 times larger).
"""

from __future__ import annotations

import cv2
import kornia
import numpy as np
import torch

METHODS = ("opencv", "kornia")


class EdgeDetector:
    """Canny with sigma and thresholds; `method` picks where it runs by default."""

    def __init__(
        self,
        sigma: float = 2.0,
        low_threshold: float = 0.1,
        high_threshold: float = 0.2,
        method: str = "opencv",
    ):
        if method not in METHODS:
            raise ValueError(f"edges.method must be one of {METHODS}, got {method!r}")
        if not sigma > 0:  # the kornia path cannot blur by 0, and both paths must agree
            raise ValueError(f"edges.sigma must be above 0, got {sigma}")
        if not 0 < low_threshold <= high_threshold:
            raise ValueError(
                f"edges thresholds need 0 < low <= high, got {low_threshold}, {high_threshold}"
            )
        self.sigma, self.method = float(sigma), method
        self.low, self.high = float(low_threshold), float(high_threshold)

    # -- worker path -------------------------------------------------------------------
    def numpy(self, gray: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Edges (H, W) float32 in {0, 1} of a grey (H, W) image in [0, 1], on the CPU."""
        weight = np.ones_like(gray) if mask is None else (1.0 - mask).astype(np.float32)
        smooth = _normalised_blur_numpy(gray.astype(np.float32), weight, self.sigma)
        pixels = np.clip(np.rint(smooth * 255.0), 0, 255).astype(np.uint8)
        edges = cv2.Canny(pixels, self.low * 255.0, self.high * 255.0, L2gradient=True) > 0
        if mask is not None:
            edges &= mask < 0.5
        return edges.astype(np.float32)

    # -- tensor path -------------------------------------------------------------------
    def __call__(self, gray: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Edges (B, 1, H, W) in {0, 1} of grey images (B, 1, H, W), on their device, in fp32.

        With method "opencv" and tensors on the CPU, OpenCV runs image by image (faster
        there); otherwise kornia runs on the tensors' device.
        """
        if self.method == "opencv" and gray.device.type == "cpu":
            return self._opencv_batch(gray, mask)
        with torch.autocast(device_type=gray.device.type, enabled=False):
            gray = gray.float()
            weight = torch.ones_like(gray) if mask is None else 1.0 - mask.float()
            smooth = _normalised_blur_torch(gray, weight, self.sigma)
            # OpenCV's Canny sees 8-bit pixels; quantise alike so both paths agree.
            smooth = torch.round(smooth * 255.0) / 255.0
            _, edges = kornia.filters.canny(
                smooth, self.low, self.high, kernel_size=1, hysteresis=True
            )
            if mask is not None:
                edges = edges * (mask.float() < 0.5)
            return edges.float()

    def _opencv_batch(self, gray: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        grays = gray.detach().float()[:, 0].numpy()
        masks = [None] * len(grays) if mask is None else mask.detach().float()[:, 0].numpy()
        edges = [self.numpy(g, m) for g, m in zip(grays, masks, strict=True)]
        return torch.from_numpy(np.stack(edges)[:, None])


def _kernel_size(sigma: float) -> int:
    return 2 * int(round(3 * sigma)) + 1


def _normalised_blur_numpy(gray: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    size = _kernel_size(sigma)

    def blur(x):
        return cv2.GaussianBlur(x, (size, size), sigma, borderType=cv2.BORDER_REFLECT_101)

    return blur(gray * weight) / np.maximum(blur(weight), 1e-6)


def _normalised_blur_torch(gray: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    size = _kernel_size(sigma)
    # kornia's "reflect" mirrors without repeating the border pixel: OpenCV's REFLECT_101.
    blur = kornia.filters.GaussianBlur2d((size, size), (sigma, sigma), border_type="reflect")
    return blur(gray * weight) / blur(weight).clamp_min(1e-6)


def to_gray(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) luminance."""
    return kornia.color.rgb_to_grayscale(image)


def add_edges(batch: dict[str, torch.Tensor], detector: EdgeDetector) -> dict[str, torch.Tensor]:
    """The tensor path: add `gray`, `edge` and `damaged_edge` to a batch on its device."""
    gray = to_gray(batch["image"])
    batch["gray"] = gray
    batch["edge"] = detector(gray)
    batch["damaged_edge"] = detector(to_gray(batch["damaged"]), batch["mask"])
    return batch
