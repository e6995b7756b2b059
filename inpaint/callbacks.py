"""Callbacks that write what a person looks at: picture grids of validation and test batches."""

from __future__ import annotations

from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from inpaint.data.images import write_image
from inpaint.visual import image_grid


class SampleGrids(Callback):
    """Writes a picture grid of the first evaluation batch, one column per preview entry.

    The module keeps that batch in `module.preview` (name -> image batch, in column order,
    e.g. damaged | mask | output | ground truth).
    """

    def __init__(self, dirpath: str, rows: int = 8):
        self.dirpath, self.rows = Path(dirpath), rows

    @rank_zero_only
    def _write(self, module: LightningModule, name: str) -> None:
        preview = getattr(module, "preview", None)
        if not preview:
            return
        grid = image_grid(list(preview.values()), self.rows)
        write_image(self.dirpath / name, grid.permute(1, 2, 0).numpy())

    def on_validation_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(module, f"val_epoch{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        self._write(module, "test.png")
