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

    The paper's U-Net sees the damaged image alone and must find the damage itself;
    `mask_input=true` also gives it the mask as a fourth channel (a network with
    `in_channels=4`), as the classical baselines are given it. `scheduler`, when set, is a
    partial learning-rate scheduler stepped once per epoch; `scheduler_monitor` is the
    metric that a scheduler such as ReduceLROnPlateau watches.
    Validation and test report the same metrics for the damaged input (suffix `_input`).
    """

    evaluation_losses = ("loss",)

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        loss: str = "mse",
        mask_input: bool = False,
        scheduler: Callable | None = None,
        scheduler_monitor: str | None = None,
    ):
        super().__init__({"image": ImageMetrics, "image_input": ImageMetrics})
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {sorted(LOSSES)}, got {loss!r}")
        expected = 4 if mask_input else 3
        if net.in_channels != expected:
            raise ValueError(
                f"model.net.in_channels must be {expected} when model.mask_input is "
                f"{str(mask_input).lower()} (image{' + mask' if mask_input else ''}), "
                f"got {net.in_channels}"
            )
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.loss_fn = LOSSES[loss]
        self.mask_input, self.scheduler_monitor = mask_input, scheduler_monitor

    def forward(self, damaged: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.mask_input:
            return self.net(damaged)
        if mask is None:
            raise ValueError("this U-Net was trained with the mask as input: give one")
        return self.net(torch.cat([damaged, mask.to(damaged.dtype)], dim=1))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self(batch["damaged"], batch["mask"]), batch["image"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def evaluate(self, stage, batch):
        output = self(batch["damaged"], batch["mask"])
        self.log(f"{stage}/loss", self.loss_fn(output, batch["image"]), sync_dist=True)
        self.metrics[stage]["image"].update(output, batch["image"], batch["mask"])
        self.metrics[stage]["image_input"].update(batch["damaged"], batch["image"], batch["mask"])
        return {
            "damaged": batch["damaged"],
            "mask": batch["mask"],
            "output": output,
            "image": batch["image"],
        }

    def configure_optimizers(self):
        optimizer = self.optimizer(params=self.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = {"scheduler": self.scheduler(optimizer=optimizer)}
        if self.scheduler_monitor:
            scheduler["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
