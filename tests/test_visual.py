"""Pictures for people: where the edge overlay puts its colours, how the grid lays tiles out."""

from __future__ import annotations

import pytest
import torch

from inpaint.visual import PREDICTED_EDGE_COLOUR, edge_overlay, image_grid


def test_predicted_edges_are_coloured_inside_the_hole_over_white_canny_edges():
    canny = torch.zeros(1, 1, 4, 4)
    canny[..., 0, :] = 1
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :, :2] = 1
    overlay = edge_overlay(canny, torch.ones(1, 1, 4, 4), mask)
    colour = torch.tensor(PREDICTED_EDGE_COLOUR).view(3, 1, 1)
    assert torch.equal(overlay[0, :, :, :2], colour.expand(3, 4, 2))  # on top, in the hole
    assert torch.equal(overlay[0, :, 0, 2:], torch.ones(3, 2))  # Canny alone: white
    assert torch.equal(overlay[0, :, 1:, 2:], torch.zeros(3, 3, 2))  # outside the hole: none


@pytest.mark.parametrize(("side", "factor"), [(50, 2), (64, 2), (32, 3), (96, 1)])
def test_tiles_below_min_tile_are_enlarged_and_laid_out_in_rows_and_columns(side, factor):
    padding, count = 2, 3
    first, second = torch.rand(count, 3, side, side), torch.rand(count, 1, side, side)
    grid = image_grid([first, second], padding=padding, min_tile=96)
    tile = side * factor
    assert grid.shape == (3, padding + count * (tile + padding), padding + 2 * (tile + padding))
    enlarged = first[2].repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    top = padding + 2 * (tile + padding)  # the third row
    assert torch.equal(grid[:, top : top + tile, padding : padding + tile], enlarged)
    left = 2 * padding + tile  # the second column, grey as RGB
    assert torch.equal(grid[:, padding, left], second[0, :, 0, 0].expand(3))
    assert torch.equal(grid[:, :padding], torch.ones(3, padding, grid.shape[-1]))  # the border
