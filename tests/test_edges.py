"""Canny edges: both paths agree, and hole pixels never influence the edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from inpaint.data.datamodule import InpaintDataModule
from inpaint.data.edges import EdgeDetector, _normalised_blur_numpy, _normalised_blur_torch
from inpaint.data.masks import SquareMask
from inpaint.data.sources import SamplePhotos


@pytest.fixture(scope="module")
def photo_gray() -> np.ndarray:
    photo = SamplePhotos().split("test")[0][:128, :128]
    return np.ascontiguousarray(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))


@pytest.fixture
def hole() -> np.ndarray:
    mask = np.zeros((128, 128), np.float32)
    mask[40:80, 30:90] = 1
    return mask


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)[None, None]


def test_both_paths_find_nearly_the_same_edges(photo_gray, hole):
    opencv = EdgeDetector(method="opencv").numpy(photo_gray, hole)
    kornia = EdgeDetector(method="kornia")(tensor(photo_gray), tensor(hole))[0, 0].numpy()
    assert 0.02 < opencv.mean() < 0.3  # a photo has edges, but not everywhere
    iou = (opencv * kornia).sum() / np.maximum(opencv, kornia).sum()
    assert iou > 0.85


def test_both_paths_smooth_alike_up_to_the_image_border(photo_gray, hole):
    weight = 1.0 - hole
    opencv = _normalised_blur_numpy(photo_gray, weight, 2.0)
    kornia = _normalised_blur_torch(tensor(photo_gray), tensor(weight), 2.0)[0, 0].numpy()
    np.testing.assert_allclose(opencv, kornia, atol=1e-4)


@pytest.mark.parametrize("path", ["opencv", "kornia"])
def test_hole_pixels_never_change_the_edges(photo_gray, hole, path):
    detector = EdgeDetector(method=path)  # the default runs OpenCV even for tensors on the CPU
    run = (
        detector.numpy
        if path == "opencv"
        else (lambda g, m: detector(tensor(g), tensor(m))[0, 0].numpy())
    )
    scribbled = photo_gray.copy()
    scribbled[hole > 0] = np.random.default_rng(0).random(int(hole.sum()))
    original = run(photo_gray, hole)
    assert np.array_equal(original, run(scribbled, hole))
    assert original[hole > 0].sum() == 0
    without_mask = (
        run(scribbled, None) if path == "opencv" else detector(tensor(scribbled))[0, 0].numpy()
    )
    assert without_mask[hole > 0].sum() > 0  # the scribble itself is full of edges


def test_larger_sigma_gives_fewer_edges(photo_gray):
    assert (
        EdgeDetector(sigma=4).numpy(photo_gray).sum()
        < EdgeDetector(sigma=1).numpy(photo_gray).sum()
    )


@pytest.mark.parametrize("method", ["opencv", "kornia"])
def test_a_lower_low_threshold_follows_edges_further(method):
    """Hysteresis: weak pixels joined to strong ones count (a 256 px crop: on the 128 px one
    the low threshold hardly matters)."""
    photo = SamplePhotos().split("test")[0][:256, :256]
    gray = torch.from_numpy(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))[None, None]

    def count(low):
        return EdgeDetector(low_threshold=low, method=method)(gray).sum()

    assert count(0.02) > count(0.2)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="edges.method must be one of"):
        EdgeDetector(method="sobel")
    with pytest.raises(ValueError, match="0 < low <= high"):
        EdgeDetector(low_threshold=0.3, high_threshold=0.2)
    with pytest.raises(ValueError, match="edges.sigma must be above 0, got 0"):
        EdgeDetector(sigma=0)


@pytest.mark.parametrize("method", ["opencv", "kornia"])
def test_batches_carry_edges_in_both_paths(method):
    datamodule = InpaintDataModule(
        SamplePhotos(),
        SquareMask(),
        image_size=32,
        eval_length=4,
        batch_size=4,
        edges=EdgeDetector(method=method),
    )
    datamodule.setup("validate")
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.val_dataloader())), 0)
    for key in ("gray", "edge", "damaged_edge"):
        assert batch[key].shape == (4, 1, 32, 32)
    assert set(batch["edge"].unique().tolist()) <= {0.0, 1.0}
    assert (batch["damaged_edge"] * (batch["mask"] >= 0.5)).sum() == 0
    assert torch.allclose(
        batch["gray"],
        batch["image"]
        .mul(torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
        .sum(1, keepdim=True),
        atol=1e-3,
    )


def test_tensor_call_on_cpu_uses_opencv_image_by_image(photo_gray, hole):
    detector = EdgeDetector(method="opencv")
    batch = detector(tensor(photo_gray).repeat(2, 1, 1, 1), tensor(hole).repeat(2, 1, 1, 1))
    assert batch.shape == (2, 1, 128, 128) and batch.dtype == torch.float32
    assert np.array_equal(batch[1, 0].numpy(), detector.numpy(photo_gray, hole))
