"""Trains the mask prediction network: damaged image in, per-pixel damage out."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from inpaint.models.base import InpaintingModule
from inpaint.models.losses import mask_loss
from inpaint.models.metrics import MaskMetrics


class MPNModule(InpaintingModule):
    """Class-balanced BCE on binary masks, L1 on continuous ones.

    Besides the model, validation and test score two trivial answers, the empty mask
    (suffix `_empty`) and "all damaged" (suffix `_full`), so IoU and F1 have references.
    """

    progress_metrics = ("val/mask_iou",)
    evaluation_losses = ("loss",)

    def __init__(self, net: nn.Module, optimizer: Callable, l1_weight: float = 1.0):
        super().__init__({"mask": MaskMetrics, "mask_empty": MaskMetrics, "mask_full": MaskMetrics})
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer"])
        self.net, self.optimizer, self.l1_weight = net, optimizer, l1_weight

    def forward(self, damaged: torch.Tensor) -> torch.Tensor:
        """Mask probabilities in [0, 1], computed in fp32."""
        return torch.sigmoid(self.net(damaged).float())

    def training_step(self, batch, batch_idx):
        loss = mask_loss(self.net(batch["damaged"]), batch["mask"], self.l1_weight)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def evaluate(self, stage, batch):
        logits = self.net(batch["damaged"])
        loss = mask_loss(logits, batch["mask"], self.l1_weight)
        self.log(f"{stage}/loss", loss, sync_dist=True)
        predicted = torch.sigmoid(logits.float())
        mask = batch["mask"]
        self.metrics[stage]["mask"].update(predicted, mask)
        self.metrics[stage]["mask_empty"].update(torch.zeros_like(mask), mask)
        self.metrics[stage]["mask_full"].update(torch.ones_like(mask), mask)
        return {
            "damaged": batch["damaged"],
            "mask": mask,
            "predicted_mask": predicted,
            "image": batch["image"],
        }

    def configure_optimizers(self):
        return self.optimizer(params=self.parameters())
