"""Shared fixtures: the real Hydra config, shrunk so a run takes seconds on two cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from inpaint.config import compose_config

ROOT = Path(__file__).resolve().parent.parent


# Each blind-inpainting experiment's networks at toy widths: a step takes well under a second.
TINY_MODELS = {
    "unet": ["model.net.widths=[8,16]", "model.net.bottleneck=32"],
    "mpn": ["model.net.base=8", "model.net.levels=2"],
    "epn": [
        "model.generator.base=8",
        "model.generator.residual_blocks=1",
        "model.discriminator.base=8",
    ],
    "ipn": ["model.generator.cnum=8", "model.discriminator.cnum=8"],
    "blind": [
        "model.mpn.base=8",
        "model.mpn.levels=2",
        "model.epn_generator.base=8",
        "model.epn_generator.residual_blocks=1",
        "model.epn_discriminator.base=8",
        "model.ipn_generator.cnum=8",
        "model.ipn_discriminator.cnum=8",
    ],
}
TINY_MODELS["joint_epn_mpn"] = TINY_MODELS["blind"][:5]


QUIET_OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}


@pytest.fixture(autouse=True)
def _quiet_offline(monkeypatch):
    for name, value in QUIET_OFFLINE.items():
        monkeypatch.setenv(name, value)
    # An in-process run points these at its own folder (inpaint.run.keep_wandb_files_in):
    # each test starts without them, as a fresh shell would.
    for name in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def tiny_config(
    output_dir: Path, overrides: list[str] | None = None, model: str = "unet"
) -> DictConfig:
    """The train config for a few 32 px batches of toy networks, run into `output_dir`.

    `model` names the model config the overrides select, so its toy widths are applied.
    """
    tiny = ["debug=fast", "data.image_size=32", *TINY_MODELS[model]]
    cfg = compose_config("train", tiny + (overrides or []))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def scored_test_batches(cfg: DictConfig) -> list[dict]:
    """The seeded test batches a run of `cfg` scores (its `limit_test_batches` of them)."""
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    datamodule.setup("test")
    return list(datamodule.test_dataloader())[: cfg.trainer.limit_test_batches]


# The experiment whose model each kind of inference checkpoint comes from.
CHECKPOINT_EXPERIMENTS = {
    "unet": "unet_lines",
    "ipn": "ipn",
    "blind": "blind",
    "joint_epn_mpn": "joint_epn_mpn",
}


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """`trained_checkpoint(kind)`: the best checkpoint of a two-batch toy run of that kind's
    experiment, written by `inpaint.run` (made once per test session)."""
    from inpaint.run import train

    made: dict[str, Path] = {}

    def checkpoint(kind: str) -> Path:
        if kind not in made:
            output = tmp_path_factory.mktemp(f"checkpoint_{kind}")
            experiment = f"experiment={CHECKPOINT_EXPERIMENTS[kind]}"
            train(tiny_config(output, [experiment, "data.image_size=32"], model=kind))
            made[kind] = next((output / "checkpoints").glob("best-*.ckpt"))
        return made[kind]

    return checkpoint


def run_module(
    module: str,
    *arguments: str,
    timeout: int = 300,
    env: dict[str, str] | None = None,
    returncode: int = 0,
) -> subprocess.CompletedProcess:
    """Run `python -m module arguments` from the repository root, quiet and offline (with
    `env` added to the environment), and fail the test with the end of its stderr unless it
    exits with `returncode` (0: it succeeds)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        env={
            **os.environ,
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "HYDRA_FULL_ERROR": "1",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == returncode, result.stderr[-3000:]
    return result


def quiet_trainer(**kwargs) -> L.Trainer:
    """A CPU Trainer for one short epoch with no logger, checkpoints, bars or summaries."""
    options = dict(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return L.Trainer(**{**options, **kwargs})
