"""Metric groups: images (PSNR, SSIM, hole PSNR, L1), masks (BCE, IoU, F1, ...) and edges.

Each group updates per batch, computes one dict per epoch and is reduced across ranks by
torchmetrics, in float32 whatever the precision. PSNR, SSIM, L1, BCE and MAE are means of
per-image values (neither a batch's size nor an image's weighs them); IoU, F1, precision and
recall count the pixels of all images together. IoU and F1 are 1 where there is nothing to
find and nothing is found (0 / 0: a clean image, in inpaint.evaluate); precision with nothing
found and recall with nothing to find are 0. A NaN output gives NaN means, which
ModelCheckpoint ranks worst, rather than dropping the image; in IoU, F1, precision and recall
it is a pixel not found.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
)
from torchmetrics.functional.image import peak_signal_noise_ratio
from torchmetrics.image import StructuralSimilarityIndexMeasure

MAX_PSNR = 100.0  # dB; the value of a per-pixel MSE of 1e-10


def _hole_mean(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per image of a per-pixel error, weighting each pixel by its mask value."""
    weight = mask.expand_as(error)
    return (error * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)


def hole_psnr(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR per image over the damaged pixels only, weighting each pixel by its mask value."""
    mse = _hole_mean((prediction - target).pow(2), mask)
    return -10.0 * torch.log10(mse.clamp_min(10 ** (-MAX_PSNR / 10)))


def hole_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image over the damaged pixels, weighted by the mask."""
    return _hole_mean((prediction - target).abs(), mask)


def capped_psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR per image of (B, C, H, W) maps in [0, 1], capped at MAX_PSNR."""
    per_image = peak_signal_noise_ratio(
        prediction, target, data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return per_image.clamp_max(MAX_PSNR)


def per_image_mean(error: torch.Tensor) -> torch.Tensor:
    """(B, ...) per-pixel error -> (B,) mean per image."""
    return error.flatten(1).mean(1)


class MetricGroup(nn.Module):
    """A dict of torchmetrics objects computed and reset together.

    `prefix` names what is measured where the metric names alone would clash when several
    groups are logged together (`mask_psnr`, `edge_psnr` beside the image's `psnr`).
    """

    prefix = ""

    def update(self, *maps: torch.Tensor) -> None:
        """Accumulate one batch, outside autocast: SSIM's convolutions in bf16 are far off
        (0.334 against 0.553 in fp32 for a noisy 256 px crop of a photo)."""
        with torch.autocast(maps[0].device.type, enabled=False):
            self.accumulate(*(m.float() for m in maps))

    def accumulate(self, *maps: torch.Tensor) -> None:
        raise NotImplementedError

    def _apply(self, fn, recurse=True):
        """States stay float32 when the model is cast (`trainer.precision=bf16-true` calls
        `.to(dtype)`): a bf16 count of images stops at 256."""
        super()._apply(fn, recurse)
        for metric in self.children():
            metric.to(torch.float32)  # integer counts (IoU, F1) are left as they are
        return self

    def names(self) -> list[str]:
        """The keys of `compute`, known before any update."""
        return [self.prefix + name for name, _ in self.named_children()]

    def compute(self) -> dict[str, torch.Tensor]:
        return {
            key: metric.compute() for key, metric in zip(self.names(), self.children(), strict=True)
        }

    def reset(self) -> None:
        for metric in self.children():
            metric.reset()


class PixelFidelity(MetricGroup):
    """PSNR (mean of per-image values, each capped at MAX_PSNR so that an exact match does
    not make the mean infinite) and SSIM of any map in [0, 1] against its target."""

    def __init__(self):
        super().__init__()
        self.psnr = MeanMetric(nan_strategy="disable")
        self.ssim = StructuralSimilarityIndexMeasure(data_range=1.0)

    def accumulate(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        prediction = prediction.clamp(0, 1)
        self.psnr.update(capped_psnr(prediction, target))
        self.ssim.update(prediction, target)


class ImageMetrics(PixelFidelity):
    """Whole-image PSNR/SSIM/L1, and PSNR and L1 inside the hole (images without a hole
    left out)."""

    def __init__(self):
        super().__init__()
        self.psnr_hole = MeanMetric(nan_strategy="disable")
        self.l1 = MeanMetric(nan_strategy="disable")
        self.l1_hole = MeanMetric(nan_strategy="disable")

    def accumulate(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
    ) -> None:
        prediction = prediction.clamp(0, 1)
        super().accumulate(prediction, target)
        self.l1.update(per_image_mean((prediction - target).abs()))
        has_hole = mask.flatten(1).sum(1) > 0
        if has_hole.any():
            holed = prediction[has_hole], target[has_hole], mask[has_hole]
            self.psnr_hole.update(hole_psnr(*holed))
            self.l1_hole.update(hole_l1(*holed))


class MaskMetrics(PixelFidelity):
    """Predicted mask (probabilities) against the true mask: BCE, IoU and F1 at 0.5, MAE."""

    prefix = "mask_"

    def __init__(self):
        super().__init__()
        self.bce = MeanMetric(nan_strategy="disable")
        self.iou = BinaryJaccardIndex(threshold=0.5, zero_division=1)
        self.f1 = BinaryF1Score(threshold=0.5, zero_division=1)
        self.mae = MeanMetric(nan_strategy="disable")

    def accumulate(self, probability: torch.Tensor, mask: torch.Tensor) -> None:
        super().accumulate(probability, mask)
        # NaN pixels give NaN, where PyTorch's BCE would raise a range error.
        bce = F.binary_cross_entropy(probability.nan_to_num(0.5), mask, reduction="none")
        self.bce.update(per_image_mean(bce.where(~probability.isnan(), torch.nan)))
        binary = (mask >= 0.5).long()
        # A NaN pixel counts as not found; left in, it would make torchmetrics read the whole
        # batch as logits.
        found = probability.nan_to_num(0.0)
        self.iou.update(found, binary)
        self.f1.update(found, binary)
        self.mae.update(per_image_mean((probability - mask).abs()))


class EdgeMetrics(PixelFidelity):
    """Edge maps: PSNR/SSIM of the whole map; precision, recall and F1 at 0.5 inside the hole.

    An empty map scores a high PSNR on sparse edges; F1 is what rewards drawing them.
    """

    prefix = "edge_"

    def __init__(self):
        super().__init__()
        self.precision = BinaryPrecision(threshold=0.5)
        self.recall = BinaryRecall(threshold=0.5)
        self.f1 = BinaryF1Score(threshold=0.5, zero_division=1)

    def accumulate(self, edges: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        super().accumulate(edges, target)
        hole = mask >= 0.5
        if hole.any():
            predicted, true = edges[hole].nan_to_num(0.0), (target[hole] >= 0.5).long()
            for metric in (self.precision, self.recall, self.f1):
                metric.update(predicted, true)
