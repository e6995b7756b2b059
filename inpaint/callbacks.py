"""Callbacks that write what a person looks at: picture grids of validation and test batches."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from inpaint.data.images import write_image


def image_grid(
    columns: list[torch.Tensor], rows: int = 8, padding: int = 2, min_tile: int = 96
) -> torch.Tensor:
    """Lay out batches side by side: one row per sample, one column per tensor, grey as RGB.

    Tiles smaller than `min_tile` pixels are enlarged (nearest neighbour) so they can be seen.
    """
    tiles = [
        column[:rows].detach().float().cpu().clamp(0, 1).expand(-1, 3, -1, -1) for column in columns
    ]
    factor = -(-min_tile // min(tiles[0].shape[-2:]))
    if factor > 1:
        tiles = [
            nn.functional.interpolate(tile, scale_factor=factor, mode="nearest") for tile in tiles
        ]
    count, _, height, width = tiles[0].shape
    grid = torch.ones(
        3, count * (height + padding) + padding, len(tiles) * (width + padding) + padding
    )
    for col, tile in enumerate(tiles):
        for row in range(count):
            top, left = padding + row * (height + padding), padding + col * (width + padding)
            grid[:, top : top + height, left : left + width] = tile[row]
    return grid


class SampleGrids(Callback):
    """Writes `damaged | mask | output | ground truth` grids from the first evaluation batch.

    The module keeps that batch in `module.preview` (a dict with those four keys).
    """

    columns = ("damaged", "mask", "output", "image")

    def __init__(self, dirpath: str, rows: int = 8):
        self.dirpath, self.rows = Path(dirpath), rows

    @rank_zero_only
    def _write(self, module: LightningModule, name: str) -> None:
        preview = getattr(module, "preview", None)
        if not preview:
            return
        grid = image_grid([preview[key] for key in self.columns], self.rows)
        write_image(self.dirpath / name, grid.permute(1, 2, 0).numpy())

    def on_validation_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(module, f"val_epoch{trainer.current_epoch:03d}.png")

    def on_test_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
        self._write(module, "test.png")
