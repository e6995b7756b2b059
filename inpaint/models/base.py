"""What every inpainting LightningModule shares: grouped metrics per stage and preview grids."""

from __future__ import annotations

import torch
from lightning import LightningModule
from torch import nn

STAGES = ("val", "test")


class InpaintingModule(LightningModule):
    """Subclasses fill `self.metrics[stage][group]` and implement `evaluate(batch)`.

    A metric group has `update(...)`, `compute() -> dict` and `reset()`. Group "output"
    is logged as `stage/name`; any other group as `stage/name_group`, so reference numbers
    (the damaged input, trivial masks) sit beside the model's.
    `evaluate` returns the preview columns (name -> image batch) for the picture grids.
    """

    def __init__(self, metric_groups: dict[str, type]):
        super().__init__()
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({g: cls() for g, cls in metric_groups.items()})
                for stage in STAGES
            }
        )
        self.preview: dict[str, torch.Tensor] | None = None

    def evaluate(self, stage: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _evaluation_step(self, stage: str, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        preview = self.evaluate(stage, batch)
        if batch_idx == 0:
            self.preview = {name: image.detach().float() for name, image in preview.items()}

    def validation_step(self, batch, batch_idx):
        self._evaluation_step("val", batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._evaluation_step("test", batch, batch_idx)

    # Metrics shown in the progress bar; every metric goes to the loggers.
    progress_metrics = ("val/psnr",)

    def _log_metrics(self, stage: str) -> None:
        for group, metrics in self.metrics[stage].items():
            suffix = "" if group == "output" else f"_{group}"
            for name, value in metrics.compute().items():
                key = f"{stage}/{name}{suffix}"
                self.log(key, value, prog_bar=key in self.progress_metrics)
            metrics.reset()

    def on_validation_epoch_end(self):
        self._log_metrics("val")

    def on_test_epoch_end(self):
        self._log_metrics("test")
