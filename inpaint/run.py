"""`python -m inpaint.run experiment=NAME`: train, test the best checkpoint, write metrics.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group that holds a `_target_` (callbacks, loggers)."""
    if not group:
        return []
    return [
        instantiate(entry)
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


@rank_zero_only
def write_metrics(path: Path, metrics: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info("test metrics written to %s", path)


def train(cfg: DictConfig) -> dict[str, float]:
    """Build everything from the config, fit, test the best checkpoint, return test metrics."""
    L.seed_everything(cfg.seed, workers=True)
    mask = instantiate(cfg.mask)
    datamodule = instantiate(cfg.data, mask=mask)
    model = instantiate(cfg.model, _convert_="all")
    # The resolved model config travels in every checkpoint, so tools can rebuild the model.
    model.hparams["config"] = OmegaConf.to_container(cfg.model, resolve=True)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers: list[Logger] = instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics: dict[str, float] = {}
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        ckpt_path = best or (None if cfg.train else cfg.get("ckpt_path"))
        if cfg.train and not best:
            log.warning("no best checkpoint was saved; testing the weights as they are")
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
        }
        write_metrics(Path(cfg.paths.output_dir) / "metrics.json", metrics)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "")


if __name__ == "__main__":
    main()
