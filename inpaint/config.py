"""Composing the project's Hydra configs from Python (benchmarks, tests, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# inpaint.predict's own folder: there `mask=FILE` is a key, not the conf/mask/ group.
PREDICT_CONF_DIR = CONF_DIR / "predict"


def compose_config(
    name: str = "train", overrides: list[str] | None = None, config_dir: Path = CONF_DIR
) -> DictConfig:
    """The config `python -m inpaint.run` (or another app) would see, without running Hydra's
    job machinery. Interpolations that need a running job (`${hydra:...}`) stay unresolved.
    """
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=False)


def config_names(group: str) -> list[str]:
    """Every option of a config group, e.g. all mask generators."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def mask_generator_names() -> list[str]:
    """Every mask option that draws masks: all but `files`, which reads them."""
    return [name for name in config_names("mask") if name != "files"]
