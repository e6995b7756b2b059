import math

import pytest
import torch
from torch.nn import functional as F

from inpaint.models.losses import (
    class_balanced_bce,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    is_binary,
    mask_loss,
    perceptual_and_style,
)


def ten_percent_hole() -> torch.Tensor:
    target = torch.zeros(1, 1, 10, 10)
    target[..., :1, :] = 1
    return target


def test_balanced_bce_weighs_each_class_by_the_other_ones_share():
    target = ten_percent_hole()
    logits = torch.randn(1, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    weight = torch.where(target == 1, 2 * 0.9, 2 * 0.1)
    expected = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    assert class_balanced_bce(logits, target).item() == pytest.approx(expected.item())


def test_balanced_bce_costs_missing_the_hole_as_much_as_flagging_everything_else():
    target = ten_percent_hole()
    confident_intact = torch.full_like(target, -5.0)  # misses the whole hole
    confident_hole = torch.full_like(target, 5.0)  # flags every intact pixel
    assert class_balanced_bce(confident_intact, target) == pytest.approx(
        class_balanced_bce(confident_hole, target).item(), rel=1e-3
    )
    # Unbalanced, missing the hole would look 9 times cheaper than the false alarms.
    assert F.binary_cross_entropy_with_logits(confident_hole, target) > 8 * (
        F.binary_cross_entropy_with_logits(confident_intact, target)
    )


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_balanced_bce_still_penalises_a_wrong_mask_when_the_target_is_one_class(fill):
    """An undamaged (or wholly damaged) sample leaves one class: its weight must not be 0."""
    target = torch.full((1, 1, 4, 4), fill)
    logits = torch.full_like(target, 3.0 if fill == 0 else -3.0, requires_grad=True)
    loss = class_balanced_bce(logits, target)
    loss.backward()
    assert loss > 0 and logits.grad.abs().sum() > 0


def test_mask_loss_gives_binary_masks_bce_and_grey_masks_l1_by_their_share_of_samples():
    binary = ten_percent_hole()
    grey = torch.full((1, 1, 10, 10), 0.3)
    logits = torch.randn(4, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    targets = torch.cat([binary, binary, binary, grey])
    bce = class_balanced_bce(logits[:3], targets[:3])
    expected = 3 / 4 * bce + 1 / 4 * F.l1_loss(torch.sigmoid(logits[3:]), grey)
    assert mask_loss(logits, targets).item() == pytest.approx(expected.item())
    assert mask_loss(logits[3:], grey, l1_weight=2.0).item() == pytest.approx(
        2 * F.l1_loss(torch.sigmoid(logits[3:]), grey).item()
    )


@pytest.mark.parametrize(
    ("kind", "real", "fake", "expected"),
    [
        ("hinge", 2.0, -2.0, 0.0),  # both beyond the margin
        ("hinge", 0.0, 0.0, 2.0),
        ("nsgan", 0.0, 0.0, math.log(2)),
        ("lsgan", 1.0, 0.0, 0.0),
        ("lsgan", 0.0, 1.0, 1.0),
    ],
)
def test_discriminator_loss_values(kind, real, fake, expected):
    loss = discriminator_loss(kind, torch.full((2, 4), real), torch.full((2, 4), fake))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("kind", "fake", "expected"),
    [("hinge", 0.5, -0.5), ("nsgan", 0.0, math.log(2)), ("lsgan", 1.0, 0.0), ("lsgan", 0.0, 1.0)],
)
def test_generator_loss_values(kind, fake, expected):
    loss = generator_adversarial_loss(kind, torch.full((2, 4), fake))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_unknown_adversarial_loss_is_named():
    with pytest.raises(ValueError, match="'wgan'"):
        discriminator_loss("wgan", torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="'wgan'"):
        generator_adversarial_loss("wgan", torch.zeros(1))


def test_feature_matching_sums_l1_per_layer_and_sends_no_gradient_to_the_real_side():
    real = [torch.zeros(1, 2, 4, 4, requires_grad=True), torch.ones(1, 3, 2, 2, requires_grad=True)]
    fake = [torch.full((1, 2, 4, 4), 0.5, requires_grad=True), torch.ones(1, 3, 2, 2) * 3]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(0.5 + 2.0)
    loss.backward()
    assert real[0].grad is None
    assert fake[0].grad is not None


def test_style_loss_is_computed_in_float32_under_autocast():
    generator = torch.Generator().manual_seed(2)
    real = [torch.rand(2, 8, 16, 16, generator=generator) * 30 for _ in range(2)]
    fake = [torch.rand(2, 8, 16, 16, generator=generator) * 30 for _ in range(2)]
    expected = perceptual_and_style(real, fake)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = perceptual_and_style(real, fake)
    for value, reference in zip(mixed, expected, strict=True):
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(reference.item(), rel=1e-6)


def test_a_grey_mask_with_some_exact_zeros_and_ones_is_still_grey():
    """is_binary: "does the mask hold ONLY 0 and 1?"; a soft-edged hole has 0s, 1s and greys."""
    binary = ten_percent_hole()
    soft = ten_percent_hole()
    soft[..., 1, :] = 0.5  # a blurred border below a fully damaged row, the rest intact
    assert is_binary(torch.cat([binary, soft])).tolist() == [True, False]
    logits = torch.randn(1, 1, 10, 10, generator=torch.Generator().manual_seed(3))
    expected = F.l1_loss(torch.sigmoid(logits), soft)  # grey masks get L1, not BCE
    assert mask_loss(logits, soft).item() == pytest.approx(expected.item())


def test_perceptual_and_style_values_by_hand():
    """Constant maps: perceptual = |f - r| per layer; every Gram entry of a constant map v of
    C channels is v * v * (H * W) / (C * H * W) = v ** 2 / C, so style = |f ** 2 - r ** 2| / C.
    Both losses sum over the layers."""
    layers = [(2, 4, 4, 0.0, 0.5), (3, 1, 2, 1.0, 3.0)]  # (channels, height, width, real, fake)
    real = [torch.full((2, c, h, w), r) for c, h, w, r, _ in layers]
    fake = [torch.full((2, c, h, w), f) for c, h, w, _, f in layers]
    perceptual, style = perceptual_and_style(real, fake)
    assert perceptual.item() == pytest.approx(sum(abs(f - r) for *_, r, f in layers))
    expected_style = sum(abs(f**2 - r**2) / c for c, _, _, r, f in layers)
    assert style.item() == pytest.approx(expected_style)
