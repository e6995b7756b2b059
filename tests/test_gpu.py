"""Mixed precision on a GPU: every experiment trains, validates and tests under 16-mixed and
bf16-mixed. Skipped where no CUDA device is present (CI); run with `make test` on a GPU host."""

from __future__ import annotations

import math

import pytest
import torch

from inpaint.models.metrics import MaskMetrics
from inpaint.run import train
from tests.conftest import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

EXPERIMENTS = {  # experiment: the model config its toy widths belong to
    "unet_lines": "unet",
    "mpn": "mpn",
    "epn": "epn",
    "ipn": "ipn",
    "joint_epn_mpn": "joint_epn_mpn",
    "blind": "blind",
}


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_on_the_gpu_in_mixed_precision(experiment, precision, tmp_path):
    overrides = [
        f"experiment={experiment}",
        "trainer.accelerator=gpu",
        f"trainer.precision={precision}",
        "trainer.limit_train_batches=4",
    ]
    metrics = train(tiny_config(tmp_path, overrides, model=EXPERIMENTS[experiment]))
    losses = {k: v for k, v in metrics.items() if k.startswith("train/")}
    assert losses and all(math.isfinite(v) for v in losses.values()), losses
    tested = {k: v for k, v in metrics.items() if k.startswith("test/") and "psnr" not in k}
    assert tested and all(math.isfinite(v) for v in tested.values()), tested


def test_mask_metrics_update_under_cuda_autocast():
    probability = torch.rand(2, 1, 16, 16, device="cuda")
    mask = (torch.rand(2, 1, 16, 16, device="cuda") > 0.5).float()
    metrics = MaskMetrics().cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        metrics.update(probability, mask)
    expected = torch.nn.functional.binary_cross_entropy(probability, mask)
    assert metrics.compute()["mask_bce"] == pytest.approx(expected.item(), rel=1e-5)
