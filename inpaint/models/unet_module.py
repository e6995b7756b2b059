"""Trains an image-to-image network on damaged images with a pixel loss (the U-Net baseline)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from inpaint.models.base import InpaintingModule
from inpaint.models.metrics import ImageMetrics

LOSSES = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}


class UNetInpainter(InpaintingModule):
    """Damaged image in, restored image out; loss over the whole image as in the paper.

    Validation and test report the same metrics for the damaged input (suffix `_input`).
    """

    def __init__(self, net: nn.Module, optimizer: Callable, loss: str = "mse"):
        super().__init__({"image": ImageMetrics, "image_input": ImageMetrics})
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer"])
        self.net, self.optimizer = net, optimizer
        self.loss_fn = LOSSES[loss]

    def forward(self, damaged: torch.Tensor) -> torch.Tensor:
        return self.net(damaged)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self(batch["damaged"]), batch["image"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def evaluate(self, stage, batch):
        output = self(batch["damaged"])
        self.log(f"{stage}/loss", self.loss_fn(output, batch["image"]))
        self.metrics[stage]["image"].update(output, batch["image"], batch["mask"])
        self.metrics[stage]["image_input"].update(batch["damaged"], batch["image"], batch["mask"])
        return {
            "damaged": batch["damaged"],
            "mask": batch["mask"],
            "output": output,
            "image": batch["image"],
        }

    def configure_optimizers(self):
        return self.optimizer(params=self.parameters())
