"""bf16 on a CPU without bf16 kernels runs on reference code: every entry point says so."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest
import torch

from inpaint import devices
from inpaint.inference import Inpainter
from inpaint.models.unet_module import UNetInpainter
from inpaint.networks.unet import UNet
from inpaint.run import train
from tests.conftest import ROOT, tiny_config


@pytest.fixture
def no_bf16_kernels(monkeypatch):
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)


def unet_inpainter(**kwargs) -> Inpainter:
    module = UNetInpainter(UNet(widths=(8, 16), bottleneck=32), optimizer=torch.optim.Adam)
    return Inpainter(module, **kwargs)


def test_slow_bf16_is_a_cpu_matter(no_bf16_kernels, monkeypatch):
    assert "no bf16 kernels" in devices.slow_bf16("cpu")
    assert devices.slow_bf16("cuda") is None
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    assert devices.slow_bf16("cpu") is None


def test_inpainter_warns_of_slow_bf16_only_when_asked_for_bf16(no_bf16_kernels):
    with pytest.warns(UserWarning, match="precision=bf16: this CPU has no bf16 kernels"):
        unet_inpainter(precision="bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unet_inpainter(precision="32")


def test_training_in_bf16_on_such_a_cpu_logs_a_warning(no_bf16_kernels, tmp_path, caplog):
    cfg = tiny_config(tmp_path, ["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"])
    with caplog.at_level(logging.WARNING, logger="inpaint.run"):
        train(cfg)
    assert "trainer.precision=bf16-mixed: this CPU has no bf16 kernels" in caplog.text


def test_a_gpu_that_is_not_there_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert devices.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"device=cuda:1: this machine has 1 CUDA GPU"):
        devices.pick_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match=r"device=cuda: this machine has 0 CUDA GPU.*device=cpu"):
        devices.pick_device("cuda")
    with pytest.raises(ValueError, match=r"device=gpu0 is not a device"):
        devices.pick_device("gpu0")
    assert devices.pick_device("cpu") == torch.device("cpu")


def test_the_tools_flush_denormals_to_zero_in_every_thread():
    """A fresh process, as `python -m inpaint.predict` is: flushed before torch starts its
    threads, a product that would be denormal is zero in the worker threads too."""
    script = (
        "import torch; from inpaint.devices import flush_denormals; flush_denormals(); "
        "torch.set_num_threads(2); x = torch.full((1 << 20,), 1e-30); "
        "print(int(((x * 1e-10) != 0).sum()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "0", result.stderr
