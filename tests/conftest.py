"""Shared fixtures: the real Hydra config, shrunk so a run takes seconds on two cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from inpaint.config import compose_config

ROOT = Path(__file__).resolve().parent.parent

# A U-Net two levels deep and a few 16 px crops: the whole pipeline, in seconds.
TINY = [
    "debug=fast",
    "data.image_size=16",
    "model.net.widths=[8,16]",
    "model.net.bottleneck=32",
]


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def tiny_config(output_dir: Path, overrides: list[str] | None = None) -> DictConfig:
    """The train config with the tiny overrides and the run directory set to `output_dir`."""
    cfg = compose_config("train", TINY + (overrides or []))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def run_env() -> dict[str, str]:
    """Environment for running the CLI in a subprocess: quiet, offline, few threads."""
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
