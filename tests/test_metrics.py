import math

import pytest
import torch

from inpaint.models.metrics import ImageMetrics, hole_psnr


def test_hole_psnr_uses_only_hole_pixels():
    target = torch.zeros(1, 3, 4, 4)
    prediction = target.clone()
    prediction[..., :2, :] = 0.1  # error only in the top half
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    assert hole_psnr(prediction, target, mask).item() == pytest.approx(20.0, abs=1e-4)
    assert hole_psnr(prediction, target, 1 - mask).item() == pytest.approx(100.0, abs=1e-3)


def test_image_metrics_average_per_image_psnr_and_skip_images_without_hole():
    target = torch.zeros(2, 3, 8, 8)
    prediction = target.clone()
    prediction[0] += 0.1  # 20 dB
    prediction[1] += 0.01  # 40 dB
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4] = 1
    metrics = ImageMetrics()
    metrics.update(prediction, target, mask)
    values = metrics.compute(suffix="_x")
    assert values["psnr_x"].item() == pytest.approx(30.0, abs=1e-3)  # mean of 20 and 40, not pooled
    assert values["psnr_hole_x"].item() == pytest.approx(20.0, abs=1e-3)  # image 1 has no hole
    assert 0 < values["ssim_x"].item() <= 1


def test_metrics_reset_between_epochs():
    metrics = ImageMetrics()
    target = torch.rand(1, 3, 8, 8)
    metrics.update(target * 0, target, torch.ones(1, 1, 8, 8))
    first = metrics.compute()["psnr"].item()
    metrics.reset()
    metrics.update(target, target, torch.ones(1, 1, 8, 8))
    assert metrics.compute()["psnr"].item() > first + 20
    assert not math.isnan(first)
