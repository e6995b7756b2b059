"""Composing the project's Hydra configs from Python (benchmarks, tests, notebooks), and
recording and logging a job's."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

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


@rank_zero_only
def record_job(cfg: DictConfig, run_dir: Path, subdir: str = ".hydra") -> None:
    """Write Hydra's record of the job, `config.yaml`, `hydra.yaml` and `overrides.yaml` in
    `run_dir / subdir`, as Hydra would before the job (`hydra.output_subdir` is null so that
    the job chooses when: a refused command must not replace an earlier run's record).
    Outside a Hydra job (tests, notebooks) there is none to write; under DDP the launching
    process writes it (Lightning runs the job again in the others, under another name)."""
    if not HydraConfig.initialized():
        return
    folder = run_dir / subdir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (folder / "hydra.yaml").write_text(OmegaConf.to_yaml(HydraConfig.instance().cfg))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(HydraConfig.get().overrides.task))


@contextmanager
def logged_job(log: logging.Logger) -> Iterator[None]:
    """The job's log file starts with its overrides and ends with its error, if any: Hydra
    appends a rerun's lines to the same file, and prints an error on the console only."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    log.info("started with overrides: %s", " ".join(overrides) or "none")
    try:
        yield
    except Exception as error:
        log.error("failed: %s: %s", type(error).__name__, error)
        raise
