"""Pictures for people: grids of image batches and edge overlays."""

from __future__ import annotations

import torch
from torch import nn

PREDICTED_EDGE_COLOUR = (1.0, 0.25, 0.1)


def edge_overlay(canny: torch.Tensor, predicted: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Canny edges in white, predicted edges inside the hole in a second colour on top.

    All inputs (B, 1, H, W); returns (B, 3, H, W).
    """
    base = canny.float().expand(-1, 3, -1, -1)
    colour = torch.tensor(PREDICTED_EDGE_COLOUR, device=canny.device).view(1, 3, 1, 1)
    weight = (predicted.float() * (mask.float() >= 0.5)).clamp(0, 1)
    return base * (1 - weight) + colour * weight


def image_grid(
    columns: list[torch.Tensor], rows: int = 8, padding: int = 2, min_tile: int = 96
) -> torch.Tensor:
    """Lay out batches side by side: one row per sample, one column per tensor, grey as RGB.

    Tiles smaller than `min_tile` pixels are enlarged (nearest neighbour) so they can be seen.
    """
    tiles = [c[:rows].detach().float().cpu().clamp(0, 1).expand(-1, 3, -1, -1) for c in columns]
    factor = -(-min_tile // min(tiles[0].shape[-2:]))
    if factor > 1:
        tiles = [nn.functional.interpolate(t, scale_factor=factor, mode="nearest") for t in tiles]
    count, _, height, width = tiles[0].shape
    grid = torch.ones(
        3, count * (height + padding) + padding, len(tiles) * (width + padding) + padding
    )
    for col, tile in enumerate(tiles):
        for row in range(count):
            top, left = padding + row * (height + padding), padding + col * (width + padding)
            grid[:, top : top + height, left : left + width] = tile[row]
    return grid
