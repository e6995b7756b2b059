"""Trains an image-to-image network on damaged images with a pixel loss (the U-Net baseline)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning import LightningModule
from torch import nn

from inpaint.models.metrics import ImageMetrics

LOSSES = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}


class UNetInpainter(LightningModule):
    """Damaged image in, restored image out; loss over the whole image as in the paper.

    Validation and test report the same metrics for the damaged input (suffix `_input`), so
    every number comes with its trivial reference.
    """

    def __init__(self, net: nn.Module, optimizer: Callable, loss: str = "mse"):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer"])
        self.net, self.optimizer = net, optimizer
        self.loss_fn = LOSSES[loss]
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({"output": ImageMetrics(), "input": ImageMetrics()})
                for stage in ("val", "test")
            }
        )
        self.preview: dict[str, torch.Tensor] | None = None

    def forward(self, damaged: torch.Tensor) -> torch.Tensor:
        return self.net(damaged)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self(batch["damaged"]), batch["image"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _evaluate(self, stage: str, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        output = self(batch["damaged"])
        self.log(f"{stage}/loss", self.loss_fn(output, batch["image"]), prog_bar=stage == "val")
        self.metrics[stage]["output"].update(output, batch["image"], batch["mask"])
        self.metrics[stage]["input"].update(batch["damaged"], batch["image"], batch["mask"])
        if batch_idx == 0:
            self.preview = {
                "damaged": batch["damaged"],
                "mask": batch["mask"],
                "output": output.detach().float(),
                "image": batch["image"],
            }

    def _log_metrics(self, stage: str) -> None:
        values = {
            **self.metrics[stage]["output"].compute(),
            **self.metrics[stage]["input"].compute(suffix="_input"),
        }
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "psnr")
        for metrics in self.metrics[stage].values():
            metrics.reset()

    def validation_step(self, batch, batch_idx):
        self._evaluate("val", batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._evaluate("test", batch, batch_idx)

    def on_validation_epoch_end(self):
        self._log_metrics("val")

    def on_test_epoch_end(self):
        self._log_metrics("test")

    def configure_optimizers(self):
        return self.optimizer(params=self.parameters())
