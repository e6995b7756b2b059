"""What every inpainting LightningModule shares: grouped metrics per stage and preview grids."""

from __future__ import annotations

import torch
from lightning import LightningModule
from torch import nn

from inpaint.data.datamodule import InpaintDataModule

STAGES = ("val", "test")


class InpaintingModule(LightningModule):
    """Subclasses update `self.metrics[stage][group]` in `evaluate(stage, batch)`.

    `metric_groups` maps a group name to its metric class. A group is logged as
    `stage/metric` when its name is one of `model_groups` (what the model measures), else
    as `stage/metric_<reference>` where the group is named `<model group>_<reference>`,
    so reference numbers (the damaged input, trivial masks) sit beside the model's:
    `mask_empty` logs `val/mask_iou_empty`. `evaluate` returns the preview columns
    (name -> image batch) for the picture grids.
    """

    def __init__(self, metric_groups: dict[str, type]):
        super().__init__()
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({g: cls() for g, cls in metric_groups.items()})
                for stage in STAGES
            }
        )
        self.suffixes = {
            group: "" if group in self.model_groups else "_" + group.split("_", 1)[1]
            for group in metric_groups
        }
        self.preview: dict[str, torch.Tensor] | None = None

    def evaluate(self, stage: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _evaluation_step(self, stage: str, batch: dict[str, torch.Tensor], batch_idx: int) -> dict:
        columns = {
            name: image.detach().float() for name, image in self.evaluate(stage, batch).items()
        }
        if batch_idx == 0:
            self.preview = columns
        return columns

    def validation_step(self, batch, batch_idx):
        return self._evaluation_step("val", batch, batch_idx)

    def test_step(self, batch, batch_idx):
        return self._evaluation_step("test", batch, batch_idx)

    model_groups = ("image", "mask", "edge")
    # Losses a subclass logs as `stage/<name>` beside the metrics, e.g. ("loss",).
    evaluation_losses: tuple[str, ...] = ()
    needs_edges = False  # whether batches must carry Canny edges (data.edges)

    def setup(self, stage: str) -> None:
        """Without edges in its batches an edge-using model would fail at its first step
        with a missing key."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if (
            self.needs_edges
            and isinstance(datamodule, InpaintDataModule)
            and datamodule.edges is None
        ):
            raise ValueError(
                f"{type(self).__name__} needs edges in its batches, but data.edges is null: "
                "run it through its experiment (experiment=epn, ipn, joint_epn_mpn or blind) "
                "or add +edges@data.edges=canny"
            )

    def logged_keys(self, stage: str) -> set[str]:
        """Every key logged in a `stage` epoch, known before the first one ends."""
        keys = {
            f"{stage}/{name}{self.suffixes[group]}"
            for group, metrics in self.metrics[stage].items()
            for name in metrics.names()
        }
        return keys | {f"{stage}/{name}" for name in self.evaluation_losses}

    # Metrics shown in the progress bar; every metric goes to the loggers.
    progress_metrics = ("val/psnr",)

    def _log_metrics(self, stage: str) -> None:
        for group, metrics in self.metrics[stage].items():
            suffix = self.suffixes[group]
            for name, value in metrics.compute().items():
                key = f"{stage}/{name}{suffix}"
                self.log(key, value, prog_bar=key in self.progress_metrics)
            metrics.reset()

    def on_validation_epoch_end(self):
        self._log_metrics("val")

    def on_test_epoch_end(self):
        self._log_metrics("test")
