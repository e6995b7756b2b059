"""Callbacks for what a person looks at: picture grids of validation and test batches, as
PNG files and W&B image panels, a W&B table of per-image test metrics, and the W&B run id
kept in checkpoints so that a resumed run continues the same W&B run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torchmetrics.functional.image import structural_similarity_index_measure

from inpaint.data.images import to_uint8, write_image
from inpaint.models.metrics import capped_psnr, hole_psnr
from inpaint.visual import image_grid


class SampleGrids(Callback):
    """Writes a picture grid of the first evaluation batch, one column per preview entry.

    The module keeps that batch in `module.preview` (name -> image batch, in column order,
    e.g. damaged | mask | output | ground truth).
    """

    def __init__(self, dirpath: str, rows: int = 8):
        self.dirpath, self.rows = Path(dirpath), rows

    @rank_zero_only
    def _write(self, trainer: Trainer, module: LightningModule, stage: str, name: str) -> None:
        preview = getattr(module, "preview", None)
        if not preview:
            return
        grid = image_grid(list(preview.values()), self.rows).permute(1, 2, 0).numpy()
        write_image(self.dirpath / name, grid)
        caption = " | ".join(preview)
        # The step Lightning logs the same epoch's metrics at: batches, where a GAN's
        # global_step counts two optimiser steps per batch.
        step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in wandb_loggers(trainer):
            logger.log_image(f"{stage}/samples", [to_uint8(grid)], step=step, caption=[caption])

    def on_validation_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, module, "val", f"val_epoch{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        self._write(trainer, module, "test", "test.png")


def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


class WandbTestTable(Callback):
    """Logs a `wandb.Table` of per-image test metrics with thumbnails (damaged, output).

    Uses the columns each module's test step returns: `output` and `image` give PSNR,
    SSIM and hole PSNR; `predicted_mask` and `mask` give the mask IoU. The EPN returns
    neither: its rows hold the damaged thumbnail and the hole ratio alone.
    """

    def __init__(self, max_rows: int = 256):
        self.max_rows = max_rows
        self.rows: list[list] = []

    def on_test_epoch_start(self, trainer, module):
        self.rows = []

    @rank_zero_only
    def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        if not wandb_loggers(trainer) or not outputs or len(self.rows) >= self.max_rows:
            return
        import wandb

        for i, index in enumerate(batch["index"].tolist()[: self.max_rows - len(self.rows)]):
            row = {"index": index, "damaged": wandb.Image(_hwc(outputs["damaged"][i]))}
            if "output" in outputs and "image" in outputs:
                output, image, mask = (
                    outputs["output"][i : i + 1],
                    outputs["image"][i : i + 1],
                    batch["mask"][i : i + 1],
                )
                row["output"] = wandb.Image(_hwc(outputs["output"][i]))
                row["psnr"] = capped_psnr(output.float(), image.float()).item()
                row["ssim"] = structural_similarity_index_measure(
                    output.float(), image.float(), data_range=1.0
                ).item()
                # No hole, no hole PSNR: the logged mean leaves such images out too.
                row["psnr_hole"] = (
                    hole_psnr(output.float(), image.float(), mask.float()).item()
                    if mask.sum() > 0
                    else None
                )
            if "predicted_mask" in outputs:
                predicted, mask = outputs["predicted_mask"][i] >= 0.5, batch["mask"][i] >= 0.5
                union = (predicted | mask).sum().item()
                row["mask_iou"] = (predicted & mask).sum().item() / union if union else 1.0
            row["hole_ratio"] = batch["mask"][i].float().mean().item()
            self.rows.append(row)

    @rank_zero_only
    def on_test_epoch_end(self, trainer, module):
        if not self.rows or not wandb_loggers(trainer):
            return
        import wandb

        columns = list(self.rows[0])
        table = wandb.Table(
            columns=columns, data=[[row.get(c) for c in columns] for row in self.rows]
        )
        for logger in wandb_loggers(trainer):
            logger.experiment.log({"test/per_image": table})


def _hwc(image: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as 8-bit (H, W, 3), for a W&B thumbnail."""
    return to_uint8(image.detach().float().expand(3, -1, -1).permute(1, 2, 0).cpu().numpy())


class WandbRunId(Callback):
    """Stores the W&B run id and group in every checkpoint; a resumed run reads them back
    (`inpaint.resume.wandb_run_of`)."""

    def on_save_checkpoint(self, trainer, module, checkpoint):
        for logger in wandb_loggers(trainer):
            checkpoint["wandb_run_id"] = logger.version
            checkpoint["wandb_group"] = logger.experiment.group or None
