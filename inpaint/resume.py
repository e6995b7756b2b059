"""Running again in a run's folder: from a checkpoint (it must fit the model; the CSV curves
and the W&B run go on from it) or afresh (the earlier run's outputs are set aside)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only

from inpaint.torch_files import load_torch_file, require_checkpoint_file, state_dict_mismatch

log = logging.getLogger(__name__)


def load_fitting_checkpoint(ckpt_path: str | None, model: L.LightningModule) -> dict:
    """The checkpoint a run resumes from or tests ({} without one), checked to fit the run's
    model before any logger touches the run's folder: one of another experiment would fail
    only in `trainer.fit`, after the CSV logger had emptied the earlier curves."""
    if not ckpt_path:
        return {}
    path = require_checkpoint_file(ckpt_path)
    checkpoint = load_torch_file(path, "a checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"ckpt_path={path} is not a Lightning checkpoint (it has no state_dict)")
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        trained = checkpoint.get("hyper_parameters", {}).get("config", {}).get("_target_")
        raise ValueError(
            f"ckpt_path={path} holds a model ({trained or 'of unknown class'}) that does not "
            f"fit this run's {type(model).__name__} ({state_dict_mismatch(error)}): give the "
            "overrides it was trained with (experiment=..., model widths)"
        ) from None
    return checkpoint


def is_test_row(row: dict[str, str]) -> bool:
    return any(value and key.startswith("test/") for key, value in row.items())


def batches_trained(checkpoint: dict) -> int | None:
    """The training batches a checkpoint has run: the `step` of the CSV logger's rows (a
    GAN's global_step counts two optimiser steps per batch)."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return loop.get("_batches_that_stepped")


def refuse_fewer_epochs(ckpt_path: str, checkpoint: dict, max_epochs: int | None) -> None:
    """Lightning refuses a resume to fewer epochs than the checkpoint ran only inside its
    fit, after the earlier run's files are set aside: refuse it before."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    ran = progress.get("current", {}).get("processed")
    if ran is not None and max_epochs not in (None, -1) and ran > max_epochs:
        raise ValueError(
            f"trainer.max_epochs={max_epochs}, but {ckpt_path} has run {ran} epochs: "
            f"give trainer.max_epochs={ran} or more to resume it"
        )


def continue_csv_curves(loggers: list[Logger], last_step: int | None) -> None:
    """Lightning's CSVLogger empties the `metrics.csv` of the folder it logs into: a run from a
    checkpoint in the same folder keeps the earlier rows instead. Training goes on from
    `last_step`: the rows after it, and the earlier test's, are dropped. A test keeps all."""
    for logger in loggers:
        path = Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None
        if path is None or not path.is_file():
            continue
        with path.open(newline="") as handle:
            rows = [
                row
                for row in csv.DictReader(handle)
                if last_step is None or (int(row["step"]) <= last_step and not is_test_row(row))
            ]
        writer = logger.experiment  # its creation empties the file
        for row in rows:
            values = {key: value for key, value in row.items() if value and key != "step"}
            writer.log_metrics(values, int(row["step"]))
        writer.save()


def wandb_run_of(checkpoint: dict) -> dict | None:
    """The W&B run a checkpoint was logged to, to continue it: its id, and its group, which a
    sweep job resumed as a single run would otherwise lose."""
    if not checkpoint.get("wandb_run_id"):
        return None
    group = checkpoint.get("wandb_group")
    return {"id": checkpoint["wandb_run_id"], "resume": "allow"} | (
        {"group": group} if group else {}
    )


def set_aside(path: Path, what: str) -> None:
    """Move an earlier run's file or folder to NAME.earlier (metrics.earlier.json), or
    .earlier.2, .3, ... when that is taken: a second rerun keeps the first's too."""
    stem, suffix = (path.stem, path.suffix) if path.is_file() else (path.name, "")
    earlier, number = path.with_name(f"{stem}.earlier{suffix}"), 2
    while earlier.exists():
        earlier, number = path.with_name(f"{stem}.earlier.{number}{suffix}"), number + 1
    path.replace(earlier)
    log.warning("%s held an earlier run's %s: moved to %s", path, what, earlier)


# What a training run writes that an earlier one's would mix with: best-*.ckpt of both
# runs side by side (the new run's as best-*-v1.ckpt), its last.ckpt taken for the new
# run's, its curves and pictures replaced, its offline W&B runs synced with the new one's.
TRAINING_OUTPUTS = {
    "checkpoints": "checkpoints",
    "csv": "curves",
    "samples": "pictures",
    "wandb": "W&B files",
}


@rank_zero_only
def set_aside_earlier_run(output_dir: Path, fresh: bool, record: bool) -> None:
    """Move aside what an earlier run in this folder (a rerun, a resume in place, a test)
    left: its `metrics.json`, which must not pass for this run's if it stops before testing;
    its Hydra record `.hydra/` when `record` (this run writes its own there next); and, for
    a `fresh` training run (no checkpoint to go on from), its checkpoints, curves, pictures."""
    if (output_dir / "metrics.json").is_file():
        set_aside(output_dir / "metrics.json", "test metrics")
    if record:
        set_aside(output_dir / ".hydra", "Hydra record")
    for name, what in TRAINING_OUTPUTS.items() if fresh else ():
        if (output_dir / name).is_dir() and any((output_dir / name).iterdir()):
            set_aside(output_dir / name, what)


def flatten(tree: dict, prefix: str) -> dict[str, object]:
    """Nested settings as {"data.mask.count": ...}."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        flat |= flatten(value, name) if isinstance(value, dict) else {name: value}
    return flat


# Settings that change where the data lies or how it is read, not what is learnt.
NOT_LEARNT = {"num_workers", "root"}


def warn_if_settings_differ(checkpoint: dict, hparams: dict, shown: int = 5) -> None:
    """A resume goes on with this run's model, data and mask settings, whatever the
    checkpoint was trained with: say which differ (on purpose to fine-tune, or an override
    of the earlier run forgotten)."""
    trained, now = {}, {}
    for key, group in (("config", "model"), ("data", "data"), ("mask", "mask")):
        trained |= flatten(checkpoint.get("hyper_parameters", {}).get(key) or {}, group)
        now |= flatten(hparams.get(key) or {}, group)
    changed = [
        f"{key}: {trained.get(key, '(unset)')} -> {now.get(key, '(unset)')}"
        for key in sorted(trained.keys() | now.keys())
        if trained.get(key) != now.get(key) and key.rsplit(".", 1)[-1] not in NOT_LEARNT
    ]
    if changed:
        log.warning(
            "the checkpoint was trained with other settings than this run's (%d): %s%s",
            len(changed),
            "; ".join(changed[:shown]),
            "; ..." if len(changed) > shown else "",
        )


def best_checkpoint(callback: ModelCheckpoint | None) -> str:
    """The best checkpoint to test ("" without one). Resumed in a run's folder that was moved
    or copied, Lightning keeps the path the best had in the folder it was saved in: the file
    of that name in this run's checkpoints folder is the one."""
    if callback is None or not callback.best_model_path:
        return ""
    best, folder = Path(callback.best_model_path), Path(callback.dirpath)
    here = folder / best.name
    if best.parent.resolve() != folder.resolve() and here.is_file():
        log.warning(
            "the best checkpoint was saved as %s, in another folder: testing %s", best, here
        )
        return str(here)
    return str(best)


def saved_in(checkpoint: dict) -> list[Path]:
    """The folders the checkpoint's ModelCheckpoint callbacks saved into."""
    states = checkpoint.get("callbacks", {})
    return [
        Path(state["dirpath"])
        for key, state in states.items()
        if key.startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("dirpath")
    ]


def warn_if_resumed_elsewhere(ckpt_path: Path, output_dir: Path, checkpoint: dict) -> None:
    """Lightning restores the best checkpoint's score only in the directory it was saved to:
    not in a new directory, nor in the run's own once that was moved or copied."""
    run_dir = ckpt_path.resolve().parent.parent
    if ckpt_path.resolve().parent.name == "checkpoints" and run_dir != output_dir.resolve():
        log.warning(
            "resuming %s into a new directory %s: the best checkpoint will be chosen among the "
            "epochs run from here on; give hydra.run.dir=%s to continue that run in place",
            ckpt_path,
            output_dir,
            run_dir,
        )
        return
    elsewhere = [
        folder
        for folder in saved_in(checkpoint)
        if not folder.resolve().is_relative_to(output_dir.resolve())
    ]
    if elsewhere:
        log.warning(
            "%s was saved in %s, a folder this run's was moved or copied from: Lightning "
            "forgets the earlier best score, and the best checkpoint will be chosen among the "
            "epochs run from here on",
            ckpt_path,
            elsewhere[0],
        )
