"""Image metrics per image, averaged over a data set, for an output and the damaged input."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure


def hole_psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR per image over the damaged pixels only, weighting each pixel by its mask value."""
    weight = mask.expand_as(target)
    squared = (prediction - target).pow(2) * weight
    mse = squared.flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


class ImageMetrics(nn.Module):
    """PSNR and SSIM over the whole image (mean of per-image values) and PSNR in the hole.

    Images without any hole are left out of the hole PSNR.
    """

    def __init__(self):
        super().__init__()
        self.psnr = PeakSignalNoiseRatio(
            data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3)
        )
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.psnr_hole = MeanMetric()

    def update(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        prediction, target, mask = prediction.float(), target.float(), mask.float()
        self.psnr.update(prediction, target)
        self.ssim.update(prediction, target)
        has_hole = mask.flatten(1).sum(1) > 0
        if has_hole.any():
            self.psnr_hole.update(hole_psnr(prediction[has_hole], target[has_hole], mask[has_hole]))

    def compute(self, suffix: str = "") -> dict[str, torch.Tensor]:
        return {
            f"psnr{suffix}": self.psnr.compute(),
            f"ssim{suffix}": self.ssim.compute(),
            f"psnr_hole{suffix}": self.psnr_hole.compute(),
        }

    def reset(self) -> None:
        for metric in (self.psnr, self.ssim, self.psnr_hole):
            metric.reset()
