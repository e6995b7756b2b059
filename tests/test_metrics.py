import math

import pytest
import torch
from torch import nn

from inpaint.models.metrics import (
    MAX_PSNR,
    EdgeMetrics,
    ImageMetrics,
    MaskMetrics,
    hole_l1,
    hole_psnr,
)


def test_hole_psnr_uses_only_hole_pixels():
    target = torch.zeros(1, 3, 4, 4)
    prediction = target.clone()
    prediction[..., :2, :] = 0.1  # error only in the top half
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    assert hole_psnr(prediction, target, mask).item() == pytest.approx(20.0, abs=1e-4)
    assert hole_psnr(prediction, target, 1 - mask).item() == pytest.approx(100.0, abs=1e-3)
    half = mask * 0.5  # partial damage weighs the same pixels, so the means do not change
    assert hole_l1(prediction, target, half).item() == pytest.approx(0.1, abs=1e-6)
    assert hole_l1(prediction, target, 1 - mask).item() == pytest.approx(0.0, abs=1e-7)


def test_image_metrics_average_per_image_psnr_and_skip_images_without_hole():
    target = torch.zeros(2, 3, 8, 8)
    prediction = target.clone()
    prediction[0] += 0.1  # 20 dB
    prediction[1] += 0.01  # 40 dB
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4] = 1
    metrics = ImageMetrics()
    metrics.update(prediction, target, mask)
    values = metrics.compute()
    assert values["psnr"].item() == pytest.approx(30.0, abs=1e-3)  # mean of 20 and 40, not pooled
    assert values["psnr_hole"].item() == pytest.approx(20.0, abs=1e-3)  # image 1 has no hole
    assert values["l1"].item() == pytest.approx((0.1 + 0.01) / 2, abs=1e-6)
    assert values["l1_hole"].item() == pytest.approx(0.1, abs=1e-6)  # image 0 alone
    # Constant images: SSIM's luminance term alone, C1 / (mu ** 2 + C1) with C1 = 0.01 ** 2.
    c1 = 0.01**2
    expected_ssim = (c1 / (0.1**2 + c1) + c1 / (0.01**2 + c1)) / 2
    assert values["ssim"].item() == pytest.approx(expected_ssim, abs=1e-4)


def test_metrics_reset_between_epochs():
    """After a reset only the new epoch's images count: a perfect one gives the cap exactly."""
    metrics = ImageMetrics()
    target = torch.rand(1, 3, 8, 8)
    metrics.update(target * 0, target, torch.ones(1, 1, 8, 8))
    assert metrics.compute()["psnr"].item() < 20
    metrics.reset()
    metrics.update(target, target, torch.ones(1, 1, 8, 8))
    values = metrics.compute()
    assert values["psnr"].item() == pytest.approx(MAX_PSNR)
    assert values["psnr_hole"].item() == pytest.approx(MAX_PSNR)
    assert values["l1"].item() == pytest.approx(0.0, abs=1e-7)


def test_mask_metrics_iou_f1_and_references():
    target = torch.zeros(1, 1, 16, 16)
    target[..., :8, :] = 1  # 128 hole pixels
    prediction = torch.zeros(1, 1, 16, 16)
    prediction[..., :4, :] = 0.9  # 64 of them found
    prediction[..., 15, :] = 0.8  # 16 false positives
    metrics = MaskMetrics()
    metrics.update(prediction, target)
    values = metrics.compute()
    assert values["mask_iou"].item() == pytest.approx(64 / 144)
    assert values["mask_f1"].item() == pytest.approx(2 * 64 / (2 * 64 + 16 + 64))
    assert values["mask_mae"].item() == pytest.approx((64 * 0.1 + 64 * 1 + 16 * 0.8) / 256)
    full = MaskMetrics()
    full.update(torch.ones_like(target), target)
    assert full.compute()["mask_iou"].item() == pytest.approx(0.5)


def test_edge_metrics_count_only_hole_pixels():
    target = torch.zeros(1, 1, 16, 16)
    target[..., :, 1] = 1  # a vertical edge
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8, :] = 1  # hole: top half, holds 8 edge pixels
    edges = torch.zeros(1, 1, 16, 16)
    edges[..., :4, 1] = 1  # 4 edge pixels found in the hole
    edges[..., :2, 3] = 1  # 2 false edges in the hole
    edges[..., 12:, 9] = 1  # outside the hole: ignored
    metrics = EdgeMetrics()
    metrics.update(edges, target, mask)
    values = metrics.compute()
    assert values["edge_recall"].item() == pytest.approx(4 / 8)
    assert values["edge_precision"].item() == pytest.approx(4 / 6)
    assert values["edge_f1"].item() == pytest.approx(2 * 4 / (2 * 4 + 2 + 4))


def test_nothing_to_find_and_nothing_found_scores_one():
    """A clean image in inpaint.evaluate: a model that finds no damage there is right."""
    clean = torch.zeros(1, 1, 16, 16)
    masks = MaskMetrics()
    masks.update(clean, clean)
    assert masks.compute()["mask_iou"].item() == masks.compute()["mask_f1"].item() == 1.0
    edges = EdgeMetrics()
    edges.update(clean, clean, torch.ones_like(clean))  # a hole without edges, none drawn
    assert edges.compute()["edge_f1"].item() == 1.0
    target = clean.clone()
    target[..., 4, :] = 1.0  # edges to find, none drawn: precision is not a free 1
    edges = EdgeMetrics()
    edges.update(clean, target, torch.ones_like(clean))
    values = edges.compute()
    assert [values[f"edge_{k}"].item() for k in ("precision", "recall", "f1")] == [0.0] * 3
    false_alarm = MaskMetrics()
    false_alarm.update(clean + 0.9, clean)
    assert false_alarm.compute()["mask_iou"].item() == false_alarm.compute()["mask_f1"].item() == 0


def test_values_do_not_depend_on_autocast_batching_or_image_size():
    """bf16 autocast leaves SSIM as in fp32; BCE and L1 are means of per-image values."""
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(8, 3, 32, 32, generator=generator)
    prediction = (target + 0.1 * torch.randn(8, 3, 32, 32, generator=generator)).clamp(0, 1)
    mask = (torch.rand(8, 1, 32, 32, generator=generator) > 0.7).float()
    plain, mixed = ImageMetrics(), ImageMetrics()
    plain.update(prediction, target, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed.update(prediction, target, mask)
    assert mixed.compute()["ssim"].item() == pytest.approx(plain.compute()["ssim"].item(), abs=1e-6)

    probability = torch.rand(8, 1, 32, 32, generator=generator)
    whole, split = MaskMetrics(), MaskMetrics()
    whole.update(probability, mask)
    split.update(probability[:6], mask[:6])
    split.update(probability[6:], mask[6:])
    for key in ("mask_bce", "mask_mae", "mask_iou"):
        assert split.compute()[key].item() == pytest.approx(whole.compute()[key].item(), rel=1e-6)

    small, large = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 32, 32)
    metrics = ImageMetrics()
    metrics.update(small + 0.5, small, torch.ones(1, 1, 8, 8))
    metrics.update(large, large, torch.ones(1, 1, 32, 32))
    values = metrics.compute()
    assert values["l1"].item() == pytest.approx(0.25)  # (0.5 + 0) / 2, not pixel-weighted
    assert values["l1_hole"].item() == pytest.approx(0.25)


def test_psnr_and_l1_weigh_every_image_alike_whatever_its_batch():
    """Three 20 dB images in one batch, then one 40 dB image: the mean of the four per-image
    values, not the mean of the two batch means."""
    errors = [0.1, 0.1, 0.1, 0.01]  # constant errors: PSNR = -20 log10(error)
    expected_psnr = sum(-20 * math.log10(e) for e in errors) / len(errors)  # 25 dB
    expected_l1 = sum(errors) / len(errors)
    metrics = ImageMetrics()
    for batch in (errors[:3], errors[3:]):
        target = torch.zeros(len(batch), 3, 8, 8)
        prediction = target + torch.tensor(batch).view(-1, 1, 1, 1)
        metrics.update(prediction, target, torch.ones(len(batch), 1, 8, 8))
    values = metrics.compute()
    assert values["psnr"].item() == pytest.approx(expected_psnr, abs=1e-3)
    assert values["l1"].item() == pytest.approx(expected_l1, abs=1e-6)
    assert values["psnr_hole"].item() == pytest.approx(expected_psnr, abs=1e-3)
    assert values["l1_hole"].item() == pytest.approx(expected_l1, abs=1e-6)


def test_predictions_beyond_the_image_range_are_scored_as_clamped():
    """An output of 1.2 where the truth is 1 is a perfect white pixel once written to a file."""
    target = torch.ones(1, 3, 8, 8)
    metrics = ImageMetrics()
    metrics.update(target + 0.2, target, torch.ones(1, 1, 8, 8))
    values = metrics.compute()
    assert values["psnr"].item() == pytest.approx(MAX_PSNR)
    assert values["psnr_hole"].item() == pytest.approx(MAX_PSNR)
    assert values["ssim"].item() == pytest.approx(1.0)
    assert values["l1"].item() == values["l1_hole"].item() == 0.0


def test_a_nan_output_makes_the_means_nan_rather_than_dropping_the_image():
    """ModelCheckpoint ranks a NaN epoch worst; a mean over the finite images would look fine."""
    target = torch.rand(2, 3, 8, 8)
    output = target.clone()
    output[0] = float("nan")
    mask = torch.ones(2, 1, 8, 8)
    images = ImageMetrics()
    images.update(output, target, mask)
    assert all(torch.isnan(value) for value in images.compute().values())
    masks = MaskMetrics()
    masks.update(output[:, :1], mask)
    values = masks.compute()
    assert torch.isnan(values["mask_bce"]) and torch.isnan(values["mask_mae"])
    # IoU counts the NaN image's pixels as not found, the other's as they are.
    found = (output[1:, :1] > 0.5).sum().item()
    assert values["mask_iou"].item() == pytest.approx(found / mask.sum().item())


def test_mask_bce_is_pytorchs():
    probability, mask = torch.rand(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    probability[0, 0, 0, 0], mask[0, 0, 0, 0] = 0.0, 1.0  # log(0): clamped at -100 alike
    probability[0, 0, 0, 1], mask[0, 0, 0, 1] = 1.0, 1.0  # log(1 - 1) alike, not 0 * -inf
    metrics = MaskMetrics()
    metrics.update(probability, mask)
    expected = nn.functional.binary_cross_entropy(probability, mask, reduction="none")
    assert metrics.compute()["mask_bce"].item() == pytest.approx(expected.mean().item())


def test_states_stay_float32_when_the_model_is_cast_to_bf16():
    """`trainer.precision=bf16-true` casts the whole module: a bf16 count stops at 256."""
    stages = nn.ModuleDict({"image": ImageMetrics()}).to(torch.bfloat16)
    target = torch.zeros(1, 3, 8, 8)
    for index in range(300):  # 256 exact images, then 44 off by 1 everywhere
        stages["image"].update(target + (index >= 256), target, torch.ones(1, 1, 8, 8))
    assert stages["image"].compute()["l1"].item() == pytest.approx(44 / 300)


def test_mask_iou_counts_grey_damage_below_half_as_intact():
    """IoU and F1 are of the hole at threshold 0.5, for the true mask as for the prediction."""
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1.0
    mask[..., 4:6, :] = 0.3  # faint damage: not hole at 0.5
    predicted = (mask >= 0.5).float()
    metrics = MaskMetrics()
    metrics.update(predicted, mask)
    values = metrics.compute()
    assert values["mask_iou"].item() == pytest.approx(1.0)
    assert values["mask_f1"].item() == pytest.approx(1.0)
