"""`python -m inpaint.run experiment=NAME`: train, test the best checkpoint, write metrics.json."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

import hydra
import lightning as L
import wandb
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, ListConfig, OmegaConf

from inpaint.config import logged_job, record_job
from inpaint.devices import flush_denormals, slow_bf16
from inpaint.models.base import STAGES
from inpaint.resume import (
    batches_trained,
    best_checkpoint,
    continue_csv_curves,
    load_fitting_checkpoint,
    refuse_fewer_epochs,
    set_aside_earlier_run,
    wandb_run_of,
    warn_if_resumed_elsewhere,
    warn_if_settings_differ,
)

log = logging.getLogger(__name__)


def sweep_name() -> str | None:
    """The multirun's folder name (its W&B group), or None for a single run."""
    hydra_config = HydraConfig.get()
    if hydra_config.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_config.sweep.dir).name


OmegaConf.register_new_resolver("sweep_name", sweep_name, replace=True)


def unique(*lists) -> ListConfig:
    """The items of several lists, each once, in order (W&B tags from several keys); a
    string is one item, null none. A ListConfig, so that a resolved config can hold it."""
    items = [[entry] if isinstance(entry, str) else entry or [] for entry in lists]
    return ListConfig(list(dict.fromkeys(item for entries in items for item in entries)))


OmegaConf.register_new_resolver("unique", unique, replace=True)


def instantiate_group(group: DictConfig | None, wandb_run: dict | None = None) -> list:
    """Instantiate every entry of a config group that holds a `_target_` (callbacks, loggers).

    A W&B logger given `wandb_run` (see `wandb_run_of`) continues that run instead of
    starting a new one.
    """
    if not group:
        return []
    objects = []
    for entry in group.values():
        if not (isinstance(entry, DictConfig) and "_target_" in entry):
            continue
        resume = wandb_run and entry._target_.endswith("WandbLogger")
        objects.append(instantiate(entry, **wandb_run) if resume else instantiate(entry))
    return objects


_WANDB_DIRS_SET: dict[str, str] = {}  # what keep_wandb_files_in set, per variable


def keep_wandb_files_in(run_dir: Path) -> None:
    """W&B stages copies of logged tables and images, and writes debug logs, under the
    user's home unless told otherwise: keep them with the run. A user's own setting wins;
    one this function made for an earlier job of a multirun is replaced."""
    for variable in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        ours = _WANDB_DIRS_SET.get(variable)
        if os.environ.get(variable, ours) == ours:
            os.environ[variable] = _WANDB_DIRS_SET[variable] = str(run_dir / "wandb")


@rank_zero_only
def write_metrics(path: Path, metrics: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info("test metrics written to %s", path)


def check_monitored_keys(model, callbacks: list, optimized_metric: str | None) -> None:
    """A monitored key that the model never logs would fail only after the first epoch, and
    a sweep's job would return no value: refuse such a key before training."""
    wanted = {
        f"{type(callback).__name__}.monitor": callback.monitor
        for callback in callbacks
        if getattr(callback, "monitor", None)
    }
    if optimized_metric:
        wanted["optimized_metric"] = optimized_metric
    if getattr(model, "scheduler_monitor", None):
        wanted["model.scheduler_monitor"] = model.scheduler_monitor
    for where, key in wanted.items():
        stage = key.split("/", 1)[0]
        if stage in STAGES and key not in (logged := model.logged_keys(stage)):
            mode = f" in model.mode={model.mode}" if hasattr(model, "mode") else ""
            raise ValueError(
                f"{where}={key!r}: {type(model).__name__}{mode} does not log it; "
                f"it logs {sorted(logged)}"
            )


def train(cfg: DictConfig) -> dict[str, float]:
    """Build everything from the config, fit, test the best checkpoint.

    Writes the test metrics to `metrics.json`; returns them with the metrics logged at the
    end of training (the last validation's), for sweepers that optimise a validation metric.
    """
    run_dir = Path(cfg.paths.output_dir)
    # A new folder gets its record at once, so that inpaint.tables counts a job refused
    # below as failed; an earlier run's record is replaced only once the checks pass.
    earlier_record = (run_dir / ".hydra").exists()
    if not earlier_record:
        record_job(cfg, run_dir)
    if not cfg.train and not cfg.get("ckpt_path"):
        raise ValueError("train=false tests a trained model: give ckpt_path=CKPT")
    L.seed_everything(cfg.seed, workers=True)
    mask = instantiate(cfg.mask)
    datamodule = instantiate(cfg.data, mask=mask)
    model = instantiate(cfg.model, _convert_="all")
    # The resolved model, data and mask configs travel in every checkpoint, so tools
    # (inpaint.evaluate, inpaint.predict) can rebuild the model and its test data.
    for key, part in (("config", cfg.model), ("data", cfg.data), ("mask", cfg.mask)):
        model.hparams[key] = OmegaConf.to_container(part, resolve=True)
    callbacks = instantiate_group(cfg.get("callbacks"))
    if cfg.train:
        check_monitored_keys(model, callbacks, cfg.get("optimized_metric"))
    # A missing or empty split stops the run here, before anything of an earlier run is moved.
    for split in (["train", "val"] if cfg.train else []) + (["test"] if cfg.test else []):
        datamodule.dataset(split)
    checkpoint = load_fitting_checkpoint(cfg.get("ckpt_path"), model)
    if cfg.train and checkpoint:
        warn_if_resumed_elsewhere(Path(cfg.ckpt_path), run_dir, checkpoint)
        warn_if_settings_differ(checkpoint, model.hparams)
    elif cfg.train and hasattr(model, "refuse_untrained_frozen_stages"):
        model.refuse_untrained_frozen_stages()
    # Loggers come once the earlier run's files are set aside; bad trainer settings stop
    # the run before that.
    trainer = build_trainer(cfg, callbacks)
    if cfg.train and checkpoint:
        refuse_fewer_epochs(cfg.ckpt_path, checkpoint, trainer.max_epochs)
    # The checks passed: the run starts.
    set_aside_earlier_run(
        run_dir, fresh=cfg.train and not cfg.get("ckpt_path"), record=earlier_record
    )
    if earlier_record:
        record_job(cfg, run_dir)
    keep_wandb_files_in(run_dir)
    # A resumed training goes on in its W&B run; a test-only run gets one of its own.
    wandb_run = wandb_run_of(checkpoint) if cfg.train else None
    loggers: list[Logger] = instantiate_group(cfg.get("logger"), wandb_run)
    if checkpoint:
        continue_csv_curves(loggers, batches_trained(checkpoint) if cfg.train else None)
    del checkpoint  # trainer.fit and trainer.test load it again
    trainer.loggers = loggers
    try:
        metrics = fit_and_test(cfg, trainer, model, datamodule)
    except BaseException:
        finish_wandb_run(loggers, exit_code=1)
        raise
    finish_wandb_run(loggers, exit_code=0)
    return metrics


def finish_wandb_run(loggers: list[Logger], exit_code: int) -> None:
    """End the job's W&B run, marked failed or not: the next job of a sweep, in the same
    process, would otherwise log into a failed job's run."""
    if any(isinstance(logger, WandbLogger) for logger in loggers) and wandb.run is not None:
        wandb.run.finish(exit_code=exit_code)


def build_trainer(cfg: DictConfig, callbacks: list) -> L.Trainer:
    """The configured Trainer, without loggers yet."""
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    if str(trainer.precision).startswith("bf16") and (
        reason := slow_bf16(trainer.strategy.root_device)
    ):
        log.warning("trainer.precision=%s: %s", trainer.precision, reason)
    return trainer


def fit_and_test(
    cfg: DictConfig, trainer: L.Trainer, model: L.LightningModule, datamodule
) -> dict[str, float]:
    """Fit (`train`), then test the best checkpoint (`test`); the metrics of both."""
    run_dir = Path(cfg.paths.output_dir)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    metrics: dict[str, float] = {}
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics |= {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        best = best_checkpoint(trainer.checkpoint_callback)
        ckpt_path = best or (None if cfg.train else cfg.get("ckpt_path"))
        if cfg.train and not best:
            log.warning("no best checkpoint was saved; testing the weights as they are")
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
        test_metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
        }
        write_metrics(run_dir / "metrics.json", test_metrics)
        metrics |= test_metrics
    return metrics


def resume_advice(run_dir: Path) -> str:
    """The command that goes on from the run's last checkpoint, in its own folder, with its
    own overrides (a sweep's job too, as a single run)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return "no checkpoint was written yet: run the command again to start over"
    overrides = [
        o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("ckpt_path=")
    ]
    command = ["python", "-m", "inpaint.run", *overrides]
    return "resume with: " + shlex.join([*command, f"ckpt_path={last}", f"hydra.run.dir={run_dir}"])


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    flush_denormals()
    try:
        with logged_job(log):
            metrics = train(cfg)
    except SIGTERMException:
        # Lightning stops on SIGTERM with a SystemExit of status 0: a scheduler, a shell's
        # `&&` or a sweep would take the stopped run for a finished one.
        log.error("stopped by SIGTERM; %s", resume_advice(Path(cfg.paths.output_dir)))
        sys.exit(128 + signal.SIGTERM)
    return metrics.get(cfg.get("optimized_metric") or "")


if __name__ == "__main__":
    main()
