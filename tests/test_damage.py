"""The damage model: damaged = (1 - m) * image + m * fill, for every kind of fill."""

from __future__ import annotations

import numpy as np
import pytest

from inpaint.data.damage import NOISE_STD, damage, make_fill, other_index
from inpaint.data.masks import FILLS

SHAPE = (24, 32, 3)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(123).random(SHAPE, dtype=np.float32)


@pytest.fixture
def other() -> np.ndarray:
    return np.random.default_rng(456).random(SHAPE, dtype=np.float32)


@pytest.fixture
def mask() -> np.ndarray:
    """Left third intact, middle third half damaged, right third a hole, plus a ramp row."""
    mask = np.zeros(SHAPE[:2], np.float32)
    mask[:, 10:20] = 0.5
    mask[:, 20:] = 1.0
    mask[0, :] = np.linspace(0.0, 1.0, SHAPE[1], dtype=np.float32)
    return mask


def fill_of(kind: str, other: np.ndarray, seed: int = 0) -> np.ndarray:
    return make_fill(kind, np.random.default_rng(seed), SHAPE, other if kind == "image" else None)


def test_every_mask_fill_is_supported(other):
    for kind in FILLS:
        fill = fill_of(kind, other)
        assert fill.shape == SHAPE
        assert fill.dtype == np.float32
        assert fill.min() >= 0.0 and fill.max() <= 1.0


@pytest.mark.parametrize("kind", FILLS)
def test_damage_keeps_intact_pixels_and_fills_holes(kind, image, other, mask):
    fill = fill_of(kind, other)
    damaged = damage(image, mask, fill)
    assert damaged.shape == SHAPE and damaged.dtype == np.float32
    intact, hole = mask == 0, mask == 1
    np.testing.assert_array_equal(damaged[intact], image[intact])
    np.testing.assert_array_equal(damaged[hole], fill[hole])


@pytest.mark.parametrize("kind", FILLS)
def test_damage_blends_linearly(kind, image, other, mask):
    fill = fill_of(kind, other)
    damaged = damage(image, mask, fill)
    m = mask[:, :, None]
    np.testing.assert_allclose(damaged, (1 - m) * image + m * fill, atol=1e-6)
    half = mask == 0.5
    np.testing.assert_allclose(damaged[half], (image[half] + fill[half]) / 2, atol=1e-6)
    # Along the ramp row the damage moves from the image to the fill in proportion to m.
    ramp = mask[0]
    np.testing.assert_allclose(
        damaged[0], image[0] + ramp[:, None] * (fill[0] - image[0]), atol=1e-6
    )


def test_damage_with_a_soft_mask_stays_in_range(image, other):
    soft = np.random.default_rng(1).random(SHAPE[:2], dtype=np.float32)
    for kind in FILLS:
        damaged = damage(image, soft, fill_of(kind, other))
        assert damaged.min() >= 0.0 and damaged.max() <= 1.0
        low = np.minimum(image, fill_of(kind, other)) - 1e-6
        high = np.maximum(image, fill_of(kind, other)) + 1e-6
        assert np.all((low <= damaged) & (damaged <= high)), kind


def test_damage_does_not_modify_its_inputs(image, other, mask):
    before = image.copy(), mask.copy(), other.copy()
    damage(image, mask, other)
    for array, copy in zip((image, mask, other), before, strict=True):
        np.testing.assert_array_equal(array, copy)


def test_zeros_and_ones_fills():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(make_fill("zeros", rng, SHAPE), np.zeros(SHAPE, np.float32))
    np.testing.assert_array_equal(make_fill("ones", rng, SHAPE), np.ones(SHAPE, np.float32))


def test_colour_fill_is_constant_per_channel():
    colours = []
    for seed in range(20):
        fill = make_fill("colour", np.random.default_rng(seed), SHAPE)
        assert fill.shape == SHAPE
        colour = fill[0, 0]
        np.testing.assert_array_equal(fill, np.broadcast_to(colour, SHAPE))
        assert np.all((0 <= colour) & (colour <= 1))
        colours.append(colour.copy())
    colours = np.array(colours)
    assert len({tuple(c) for c in colours}) == len(colours), "each draw should pick a new colour"
    assert colours.std(axis=0).min() > 0.1, "every channel should vary between draws"
    assert np.mean([len(set(c)) == 3 for c in colours]) > 0.9, "channels drawn independently"


def test_noise_fill_statistics():
    fill = make_fill("noise", np.random.default_rng(0), (64, 64, 3))
    assert fill.dtype == np.float32
    assert fill.min() >= 0.0 and fill.max() <= 1.0
    assert fill.mean() == pytest.approx(0.5, abs=0.02)
    # Clipping at 0 and 1 only trims the tails of a N(0.5, NOISE_STD) draw.
    assert 0.8 * NOISE_STD < fill.std() <= NOISE_STD * 1.02
    assert np.unique(fill).size > 1000, "noise should differ pixel by pixel and channel by channel"
    assert not np.array_equal(fill[..., 0], fill[..., 1])


def test_noise_fill_is_clipped():
    rng = np.random.default_rng(0)
    fill = make_fill("noise", rng, (128, 128, 3))
    # About 2.3% of N(0.5, 0.25) falls below 0: clipping piles it up exactly at 0 (and 1).
    assert 0.01 < (fill == 0).mean() < 0.04
    assert 0.01 < (fill == 1).mean() < 0.04


def test_noise_fill_is_reproducible_from_the_generator():
    a = make_fill("noise", np.random.default_rng(7), SHAPE)
    b = make_fill("noise", np.random.default_rng(7), SHAPE)
    c = make_fill("noise", np.random.default_rng(8), SHAPE)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_image_fill_returns_the_other_image(other):
    fill = make_fill("image", np.random.default_rng(0), SHAPE, other)
    np.testing.assert_array_equal(fill, other)


def test_image_fill_without_other_image_raises():
    with pytest.raises(ValueError, match="another image"):
        make_fill("image", np.random.default_rng(0), SHAPE)


def test_image_fill_with_wrong_shape_raises():
    wrong = np.zeros((SHAPE[0] + 1, SHAPE[1], 3), np.float32)
    with pytest.raises(ValueError, match="another image"):
        make_fill("image", np.random.default_rng(0), SHAPE, wrong)


def test_unknown_fill_raises():
    with pytest.raises(ValueError, match="unknown fill 'glitter'"):
        make_fill("glitter", np.random.default_rng(0), SHAPE)


@pytest.mark.parametrize("own", [0, 2, 4])
def test_other_index_draws_every_other_item_alike_and_never_its_own(own):
    rng = np.random.default_rng(0)
    draws = np.array([other_index(own, 5, rng) for _ in range(4000)])
    counts = np.bincount(draws, minlength=5)
    assert counts[own] == 0
    others = np.delete(counts, own)
    assert np.all(np.abs(others - 1000) < 120), counts  # 1000 +- about 4 standard deviations
