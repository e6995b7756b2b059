"""The Hydra application end to end: composition of every config, a real short run, resume."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from inpaint.config import compose_config, config_names
from inpaint.data.images import is_readable_image, read_pixels, write_image
from inpaint.run import check_monitored_keys, instantiate_group, train
from tests.conftest import ROOT, TINY_MODELS, run_module, scored_test_batches, tiny_config


@pytest.mark.parametrize("experiment", config_names("experiment"))
def test_every_experiment_composes_and_instantiates(experiment, tmp_path):
    cfg = compose_config("train", [f"experiment={experiment}", f"paths.output_dir={tmp_path}"])
    mask = instantiate(cfg.mask)
    model = instantiate(cfg.model)
    assert isinstance(model, torch.nn.Module)
    assert cfg.task_name == experiment
    datamodule = instantiate(cfg.data, mask=mask)
    assert datamodule.image_size == cfg.data.image_size
    check_monitored_keys(model, instantiate_group(cfg.callbacks), cfg.get("optimized_metric"))


PLATEAU = "{_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,_partial_:true,mode:max}"


@pytest.mark.parametrize(
    ("model", "overrides", "message"),
    [
        (
            "blind",
            ["model.mode=joint_epn_mpn"],
            r"ModelCheckpoint.monitor='val/psnr': .*joint_epn_mpn",
        ),
        (
            "blind",
            ["model.mode=joint_epn_mpn", "callbacks.model_checkpoint.monitor=val/edge_f1"],
            r"optimized_metric='val/psnr': BlindInpainter in model.mode=joint_epn_mpn",
        ),
        (
            "unet",
            [f"model.scheduler={PLATEAU}", "model.scheduler_monitor=val/psnr_hol"],
            r"model.scheduler_monitor='val/psnr_hol': UNetInpainter does not log it",
        ),
    ],
)
def test_a_monitored_key_the_model_never_logs_is_refused_before_training(
    model, overrides, message, tmp_path
):
    experiment = {"blind": "blind", "unet": "unet_lines"}[model]
    cfg = tiny_config(tmp_path / "run", [f"experiment={experiment}", *overrides], model=model)
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("data", ["cifar10", "celeba", "psv", "folder"])
def test_every_data_config_names_its_missing_root(data, tmp_path):
    missing = tmp_path / "nowhere"
    cfg = compose_config("train", [f"data={data}", f"data.source.root={missing}"])
    with pytest.raises(InstantiationException, match=f"{missing} does not exist; expected layout"):
        instantiate(cfg.data, mask=instantiate(cfg.mask))


def test_data_configs_set_their_own_image_size():
    sizes = {
        name: compose_config("train", [f"data={name}"]).data.image_size
        for name in config_names("data")
    }
    assert sizes == {"samples": 64, "cifar10": 32, "celeba": 256, "psv": 256, "folder": 256}


def test_experiment_keeps_the_data_switch():
    cfg = compose_config("train", ["experiment=unet_lines", "data=cifar10", "data.source.root=/x"])
    assert cfg.data.source._target_.endswith("Cifar10")
    assert cfg.data.image_size == 32 and cfg.mask.fill == "ones"


def test_short_run_writes_metrics_checkpoints_and_grids_then_resumes(tmp_path):
    first = tmp_path / "first"
    cfg = tiny_config(first)
    metrics = train(cfg)
    written = json.loads((first / "metrics.json").read_text())
    assert written == pytest.approx({k: v for k, v in metrics.items() if k.startswith("test/")})
    assert "val/psnr" in metrics  # sweepers optimise validation metrics
    for key in ("test/psnr", "test/ssim", "test/psnr_hole"):
        assert key in written and f"{key}_input" in written
    # The damaged input's PSNR depends on the seeded test data alone: recompute it.
    per_image = torch.cat(
        [
            -10 * torch.log10((b["damaged"] - b["image"]).square().mean((1, 2, 3)))
            for b in scored_test_batches(cfg)
        ]
    )
    assert written["test/psnr_input"] == pytest.approx(per_image.mean().item(), abs=1e-4)
    assert (first / "checkpoints" / "last.ckpt").is_file()
    assert list((first / "checkpoints").glob("best-*.ckpt"))
    assert (first / "samples" / "val_epoch000.png").is_file()
    assert (first / "samples" / "test.png").is_file()

    checkpoint = torch.load(first / "checkpoints" / "last.ckpt", weights_only=False)
    stored = checkpoint["hyper_parameters"]
    assert stored["config"]["_target_"].endswith("UNetInpainter")
    assert stored["mask"]["_target_"].endswith("LineMask")
    assert stored["data"]["source"]["_target_"].endswith("SamplePhotos")
    steps_first = checkpoint["global_step"]

    second = tmp_path / "second"
    train(
        tiny_config(
            second, [f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=2"]
        )
    )
    resumed = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["epoch"] == 1
    assert resumed["global_step"] == 2 * steps_first


@pytest.mark.parametrize("validate_every, best", [(1, "best-epoch000"), (2, "best-epoch001")])
def test_last_checkpoint_is_the_final_epoch_even_when_the_best_is_earlier(
    tmp_path, validate_every, best
):
    # The damaged input's PSNR is the same every epoch, so only the first validated epoch is
    # ever "best"; with validation every 2 epochs, the last epoch is not validated.
    cfg = tiny_config(
        tmp_path,
        [
            "trainer.max_epochs=3",
            f"trainer.check_val_every_n_epoch={validate_every}",
            "callbacks.model_checkpoint.monitor=val/psnr_input",
        ],
    )
    train(cfg)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("best-*.ckpt")) == [f"{best}.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2
    assert last["global_step"] == 3 * 2  # debug=fast: two batches per epoch


def test_resuming_in_place_keeps_the_earlier_best_and_elsewhere_warns(tmp_path, caplog):
    # As above, only the first validated epoch is ever "best" by the input's PSNR.
    monitor = "callbacks.model_checkpoint.monitor=val/psnr_input"
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    train(tiny_config(run, [monitor, "trainer.max_epochs=2"]))
    last = run / "checkpoints" / "last.ckpt"
    resume = [monitor, f"ckpt_path={last}", "trainer.max_epochs=3"]
    with caplog.at_level("WARNING", logger="inpaint.resume"):
        train(tiny_config(elsewhere, resume))
    assert f"give hydra.run.dir={run}" in caplog.text
    assert [p.name for p in (elsewhere / "checkpoints").glob("best-*")] == ["best-epoch002.ckpt"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="inpaint.resume"):
        train(tiny_config(run, resume))
    assert not re.search("new directory|moved or copied|other settings", caplog.text)
    assert [p.name for p in (run / "checkpoints").glob("best-*")] == ["best-epoch000.ckpt"]
    assert torch.load(last, weights_only=False)["epoch"] == 2


def run_cli(run_dir, *overrides, env=None):
    run_module(
        "inpaint.run",
        "debug=fast",
        "logger=default",
        "data.image_size=32",
        *TINY_MODELS["unet"],
        f"hydra.run.dir={run_dir}",
        *overrides,
        env=env,
    )
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    return wandb_run


def test_per_image_rows_cap_psnr_and_leave_out_the_hole_psnr_of_an_image_without_hole(
    monkeypatch,
):
    """The rules of the logged means: PSNR capped at MAX_PSNR, hole-free images left out."""
    from inpaint import callbacks
    from inpaint.models.metrics import MAX_PSNR, hole_psnr

    monkeypatch.setattr(callbacks, "wandb_loggers", lambda trainer: ["a W&B logger"])
    image, mask = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
    mask[1, :, 4:8, 4:8] = 1
    output = image * (1 - mask)  # the first image exact, the second's hole black
    table = callbacks.WandbTestTable()
    outputs = {"damaged": output, "output": output, "image": image}
    table.on_test_batch_end(None, None, outputs, {"index": torch.tensor([0, 1]), "mask": mask}, 0)
    exact, holed = table.rows
    assert exact["psnr"] == MAX_PSNR and exact["psnr_hole"] is None
    assert holed["psnr_hole"] == pytest.approx(hole_psnr(output[1:], image[1:], mask[1:]).item())


def test_per_image_mask_iou_of_an_image_without_hole_found_empty_is_one(monkeypatch):
    """As in the logged mean (BinaryJaccardIndex, zero_division=1)."""
    from inpaint import callbacks

    monkeypatch.setattr(callbacks, "wandb_loggers", lambda trainer: ["a W&B logger"])
    mask = torch.zeros(1, 1, 8, 8)
    outputs = {"damaged": torch.rand(1, 3, 8, 8), "predicted_mask": torch.zeros(1, 1, 8, 8)}
    table = callbacks.WandbTestTable()
    table.on_test_batch_end(None, None, outputs, {"index": torch.tensor([0]), "mask": mask}, 0)
    assert table.rows[0]["mask_iou"] == 1.0


@pytest.mark.parametrize("experiment", config_names("experiment"))
def test_the_best_checkpoint_is_the_highest_score(experiment, tmp_path):
    """Every monitored metric (val/psnr, val/mask_iou, val/edge_f1) is better higher."""
    cfg = compose_config("train", [f"experiment={experiment}", f"paths.output_dir={tmp_path}"])
    checkpoint = instantiate(cfg.callbacks.model_checkpoint)
    assert checkpoint.monitor in {"val/psnr", "val/mask_iou", "val/edge_f1"}
    assert checkpoint.mode == "max"


def test_cli_run_logs_to_csv_and_offline_wandb_with_panels_and_table(tmp_path):
    run_dir, home = tmp_path / "run", tmp_path / "home"
    home.mkdir()
    rows = "callbacks.wandb_test_table.max_rows=3"  # of the one test batch of 4 (debug=fast)
    wandb_run = run_cli(run_dir, rows, env={"HOME": str(home)})
    assert not [path for path in home.rglob("*") if "wandb" in path.name]  # all in run_dir
    assert "test/psnr" in json.loads((run_dir / "metrics.json").read_text())
    assert (run_dir / "csv" / "metrics.csv").is_file()
    media = wandb_run / "files" / "media"
    assert list((media / "images" / "val").glob("samples_*.png"))
    (panel,) = (media / "images" / "test").glob("samples_*.png")
    assert np.array_equal(read_pixels(panel), read_pixels(run_dir / "samples" / "test.png"))
    (table,) = (media / "table" / "test").glob("per_image_*.table.json")
    content = json.loads(table.read_text())
    assert {"index", "psnr", "ssim", "psnr_hole", "damaged", "output"} <= set(content["columns"])
    assert len(content["data"]) == 3
    # The thumbnails (damaged, output) W&B stages: 8-bit pictures, not floats cast to 0 or 1.
    thumbnails = [
        read_pixels(f)
        for f in (run_dir / "wandb" / "artifacts").rglob("*")
        if f.is_file() and is_readable_image(f)
    ]
    assert len(thumbnails) == 2 * 3 and all(t.max() > 1 for t in thumbnails)


def test_a_resumed_sweep_job_continues_its_wandb_run_and_group(tmp_path):
    """Resumed in place as a single run (README), a sweep's job has no sweep name of its own:
    the checkpoint keeps the W&B run's id and group."""
    sweep = tmp_path / "a_sweep"
    tiny = ["debug=fast", "logger=default", "data.image_size=32", *TINY_MODELS["unet"]]
    run_module("inpaint.run", "-m", *tiny, "seed=1", f"hydra.sweep.dir={sweep}")
    job = sweep / "0"
    (first,) = (job / "wandb").glob("offline-run-*")
    run_id = first.name.rsplit("-", 1)[1]
    last = job / "checkpoints" / "last.ckpt"
    stored = torch.load(last, weights_only=False)
    assert (stored["wandb_run_id"], stored["wandb_group"]) == (run_id, "a_sweep")
    resume = [f"ckpt_path={last}", "trainer.max_epochs=2", f"hydra.run.dir={job}"]
    run_module("inpaint.run", *tiny, "seed=1", *resume)
    runs = sorted(path.name.rsplit("-", 1)[1] for path in (job / "wandb").glob("offline-run-*"))
    assert runs == [run_id, run_id]
    assert f"ckpt_path={last}" in (job / ".hydra" / "overrides.yaml").read_text()
    resumed = torch.load(last, weights_only=False)
    assert resumed["epoch"] == 1 and resumed["wandb_group"] == "a_sweep"  # read from W&B


def test_a_failed_sweep_job_keeps_its_wandb_run_and_a_test_in_place_its_records(tmp_path):
    """Each job of a sweep logs to a W&B run of its own, the one after a failed job too. A
    test of a job's checkpoint in its folder starts a W&B run of its own (an offline run of
    the training run's id would replace its history when synced) and sets the training's
    Hydra record aside."""
    sweep = tmp_path / "sweep"
    tiny = ["debug=fast", "logger=default", "data.image_size=32", *TINY_MODELS["unet"]]
    run_module(
        "inpaint.run",
        "-m",
        *tiny,
        "model.optimizer.lr=-1,0.001",
        f"hydra.sweep.dir={sweep}",
        returncode=1,
    )

    def run_ids(job):
        return [path.name.rsplit("-", 1)[1] for path in (job / "wandb").glob("offline-run-*")]

    (failed,), (trained,) = run_ids(sweep / "0"), run_ids(sweep / "1")
    assert failed != trained
    job = sweep / "1"
    record = (job / ".hydra" / "overrides.yaml").read_text()
    (best,) = (job / "checkpoints").glob("best-*.ckpt")
    run_module("inpaint.run", *tiny, "train=false", f"ckpt_path={best}", f"hydra.run.dir={job}")
    (tested,) = set(run_ids(job)) - {trained}
    assert (job / ".hydra.earlier" / "overrides.yaml").read_text() == record
    assert "train=false" in (job / ".hydra" / "overrides.yaml").read_text()
    assert json.loads((job / "metrics.json").read_text())["test/psnr"] > 0


def test_unknown_loss_is_a_clear_error():
    cfg = compose_config("train", ["model.loss=huber"])
    with pytest.raises(InstantiationException, match="model.loss must be one of"):
        instantiate(cfg.model)


@pytest.mark.parametrize(
    "experiment, keys",
    [
        ("mpn", ["test/mask_iou", "test/mask_iou_empty", "test/mask_iou_full", "test/mask_psnr"]),
        (
            "epn",
            ["test/edge_recall", "test/edge_precision", "test/edge_psnr", "test/edge_psnr_input"],
        ),
        ("ipn", ["test/psnr", "test/ssim", "test/psnr_hole", "test/psnr_hole_input", "test/l1"]),
    ],
)
def test_each_table1_experiment_runs_end_to_end(experiment, keys, tmp_path):
    metrics = train(tiny_config(tmp_path, [f"experiment={experiment}"], model=experiment))
    assert set(keys) <= set(metrics)
    assert all(value == value for value in metrics.values())  # no NaN
    assert (tmp_path / "samples" / "test.png").is_file()


def test_slurm_launcher_config_composes_for_a_sweep():
    from hydra import compose, initialize_config_dir

    from inpaint.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "trainer=ddp"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.tasks_per_node == cfg.trainer.devices


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path):
    sweep = tmp_path / "sweep"
    run_module(
        "inpaint.run",
        "-m",
        "hparams_search=lr",
        "debug=fast",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1",
        "data.image_size=32",
        *TINY_MODELS["unet"],
        f"hydra.sweep.dir={sweep}",
    )
    assert len(list(sweep.glob("*/metrics.json"))) == 2
    best = (sweep / "optimization_results.yaml").read_text()
    assert "model.optimizer.lr" in best and "best_value" in best


def test_wandb_files_follow_each_run_but_a_users_own_folder_wins(tmp_path, monkeypatch):
    from inpaint.run import keep_wandb_files_in

    for variable in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("inpaint.run._WANDB_DIRS_SET", {})
    keep_wandb_files_in(tmp_path / "job0")
    keep_wandb_files_in(tmp_path / "job1")  # the next job of a multirun, same process
    assert os.environ["WANDB_DATA_DIR"] == str(tmp_path / "job1" / "wandb")
    monkeypatch.setenv("WANDB_CACHE_DIR", "/users/own/cache")
    keep_wandb_files_in(tmp_path / "job2")
    assert os.environ["WANDB_CACHE_DIR"] == "/users/own/cache"
    assert os.environ["WANDB_DATA_DIR"] == str(tmp_path / "job2" / "wandb")


def test_max_steps_counts_both_optimiser_steps_of_a_gan(tmp_path):
    """The README: `trainer.max_steps=N` stops a GAN model after N/2 batches."""
    cfg = tiny_config(
        tmp_path,
        ["experiment=ipn", "trainer.max_steps=4", "trainer.max_epochs=3", "~logger"],
        model="ipn",
    )
    model = instantiate(cfg.model, _convert_="all")
    trainer = instantiate(cfg.trainer, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(model, instantiate(cfg.data, mask=instantiate(cfg.mask)))
    assert trainer.global_step == 4
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 2


def test_testing_without_training_needs_a_checkpoint(tmp_path):
    (tmp_path / "metrics.json").write_text("{}\n")  # an earlier run's: left as it is
    with pytest.raises(ValueError, match="train=false tests a trained model: give ckpt_path"):
        train(tiny_config(tmp_path, ["train=false"]))
    assert (tmp_path / "metrics.json").read_text() == "{}\n"


def test_an_empty_validation_split_stops_the_run_before_anything_is_moved(tmp_path):
    images = tmp_path / "images"
    for i in range(4):
        write_image(images / f"img{i}.png", np.full((40, 40, 3), i / 4, np.float32))
    source = [f"data.source.root={images}", "data.source.val_fraction=0"]
    cfg = tiny_config(tmp_path / "run", ["data=folder", *source])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}\n")  # an earlier run's: left as it is
    with pytest.raises(FileNotFoundError, match=r"images \(val split\) holds no image files"):
        train(cfg)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_test_split_without_readable_images_stops_the_run_before_training(tmp_path):
    images = tmp_path / "images"
    for i in range(4):
        write_image(images / f"img{i}.png", np.full((40, 40, 3), i / 4, np.float32))
    lists = {"train": "img0.png\nimg1.png", "val": "img2.png", "test": "gone.png"}
    for name, listing in lists.items():
        (tmp_path / f"{name}.txt").write_text(listing + "\n")
    files = ",".join(f"{name}:{tmp_path / name}.txt" for name in lists)
    cfg = tiny_config(
        tmp_path / "run",
        ["data=folder", f"data.source.root={images}", f"data.source.split_files={{{files}}}"],
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}\n")  # an earlier run's: left as it is
    with pytest.raises(FileNotFoundError, match=r"among 1 files of .*test split.*1 missing"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_resume_with_other_settings_names_them(tmp_path, caplog):
    train(tiny_config(tmp_path, ["~logger"]))
    last = tmp_path / "checkpoints" / "last.ckpt"
    changed = ["~logger", f"ckpt_path={last}", "trainer.max_epochs=2", "data.train_length=12"]
    changed.append("data.num_workers=1")  # how the data is read: not named
    with caplog.at_level("WARNING", logger="inpaint.resume"):
        train(tiny_config(tmp_path, changed))
    assert "other settings than this run's (1): data.train_length: 16 -> 12" in caplog.text


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_run_resumed_in_its_moved_or_copied_folder_tests_its_own_best(tmp_path, caplog, how):
    """Lightning restores the best checkpoint's path in the folder it was saved in: gone, or
    another run's, once the folder is moved or copied."""
    original, run = tmp_path / "original", tmp_path / "run"
    train(tiny_config(original, ["~logger"]))
    shutil.copytree(original, run)
    scores = json.loads((run / "metrics.json").read_text())
    if how == "moved":
        shutil.rmtree(original)
    else:  # the original's best now holds other weights: testing it would score those
        best = original / "checkpoints" / "best-epoch000.ckpt"
        checkpoint = torch.load(best, weights_only=False)
        checkpoint["state_dict"] = {k: v + 1 for k, v in checkpoint["state_dict"].items()}
        torch.save(checkpoint, best)
    with caplog.at_level("WARNING", logger="inpaint.resume"):
        train(tiny_config(run, ["~logger", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]))
    assert json.loads((run / "metrics.json").read_text()) == pytest.approx(scores)
    assert f"was saved in {original / 'checkpoints'}, a folder this run's was moved" in caplog.text


def test_a_fresh_rerun_sets_the_earlier_runs_checkpoints_curves_and_pictures_aside(tmp_path):
    """Otherwise its best-*.ckpt and last.ckpt pass for the new run's until that one writes
    its own (the new best as best-*-v1.ckpt), its curves and pictures are replaced, and its
    offline W&B runs are synced with the new one's."""
    outputs = ("checkpoints", "csv", "samples", "wandb")

    def files():
        return {
            str(path.relative_to(tmp_path)): path.read_bytes()
            for name in outputs
            for path in (tmp_path / name).rglob("*")
            if path.is_file()
        }

    train(tiny_config(tmp_path, ["logger=csv"]))
    (tmp_path / "wandb" / "offline-run-1").mkdir(parents=True)  # as an offline W&B run leaves
    (tmp_path / "wandb" / "offline-run-1" / "run-1.wandb").write_bytes(b"history")
    first = files()
    assert {name.split("/")[0] for name in first} == set(outputs)
    train(tiny_config(tmp_path, ["logger=csv", "seed=7"]))
    for name, content in first.items():
        top, rest = name.split("/", 1)
        assert (tmp_path / f"{top}.earlier" / rest).read_bytes() == content
    assert not (tmp_path / "wandb").exists()  # the CSV-logged rerun wrote none of its own
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]
    assert files().keys() == {k for k in first if not k.startswith("wandb/")}  # the new run's
    assert (tmp_path / "metrics.earlier.json").is_file()


def test_an_earlier_runs_metrics_are_set_aside_before_a_rerun(tmp_path):
    """A rerun into the same folder that fails must not leave the earlier numbers as its own
    (inpaint.tables would count the job as a success)."""
    earlier = '{"test/psnr": 30.0}\n'
    (tmp_path / "metrics.json").write_text(earlier)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        train(tiny_config(tmp_path, ["model.optimizer.lr=-1", "~logger"]))
    assert not (tmp_path / "metrics.json").exists()
    assert (tmp_path / "metrics.earlier.json").read_text() == earlier
    # A second rerun keeps the first's numbers too.
    (tmp_path / "metrics.json").write_text('{"test/psnr": 31.0}\n')
    with pytest.raises(ValueError, match="Invalid learning rate"):
        train(tiny_config(tmp_path, ["model.optimizer.lr=-1", "~logger"]))
    assert (tmp_path / "metrics.earlier.json").read_text() == earlier
    assert (tmp_path / "metrics.earlier.2.json").read_text() == '{"test/psnr": 31.0}\n'
    (tmp_path / "metrics.json").write_text('{"test/psnr": 32.0}\n')  # and a third
    with pytest.raises(ValueError, match="Invalid learning rate"):
        train(tiny_config(tmp_path, ["model.optimizer.lr=-1", "~logger"]))
    assert (tmp_path / "metrics.earlier.2.json").read_text() == '{"test/psnr": 31.0}\n'
    assert (tmp_path / "metrics.earlier.3.json").read_text() == '{"test/psnr": 32.0}\n'


def test_wandb_tags_name_the_task_data_and_mask_then_the_configs_tags(monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from inpaint.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train", ["experiment=ipn", "tags=[ipn,table1,mine]"], return_hydra_config=True
        )
    hydra_config = HydraConfig.instance()
    monkeypatch.setattr(hydra_config, "cfg", None)  # the running job's, as a run sets it
    hydra_config.set_config(cfg)
    tags = ["ipn", "data=samples", "mask=blind", "table1", "mine"]
    assert list(cfg.logger.wandb.tags) == tags
    cfg.tags = None
    assert list(cfg.logger.wandb.tags) == tags[:3]
    cfg.tags = "mine"  # tags=mine on the command line: one tag, not four letters
    assert list(cfg.logger.wandb.tags) == [*tags[:3], "mine"]
    OmegaConf.resolve(cfg.logger)  # as `--cfg job --resolve` does: the value must be storable
    assert list(cfg.logger.wandb.tags) == [*tags[:3], "mine"]


def test_resuming_in_place_keeps_the_earlier_curves(tmp_path):
    """Lightning's CSVLogger empties metrics.csv; a resume in place keeps the rows up to its
    checkpoint (a GAN: its batches, half its global_step) and drops those logged after it."""
    run = tmp_path / "run"
    tiny = ["experiment=ipn", "logger=csv"]
    train(tiny_config(run, [*tiny, "trainer.max_epochs=2"], model="ipn"))
    curves = run / "csv" / "metrics.csv"
    last = run / "checkpoints" / "last.ckpt"
    batches = torch.load(last, weights_only=False)["global_step"] // 2
    with curves.open(newline="") as handle:
        earlier = list(csv.DictReader(handle))
    after_checkpoint = {**earlier[-1], "step": str(batches + 1), "epoch": "2"}
    with curves.open("a", newline="") as handle:  # as a run killed after its checkpoint leaves
        csv.DictWriter(handle, fieldnames=list(earlier[0])).writerow(after_checkpoint)
    train(tiny_config(run, [*tiny, f"ckpt_path={last}", "trainer.max_epochs=3"], model="ipn"))
    with curves.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    trained = [row["step"] for row in earlier if not row["test/l1"]]
    assert [row["step"] for row in rows[: len(trained)]] == trained
    assert [row["epoch"] for row in rows[len(trained) :] if row["val/l1"]] == ["2"]
    assert [int(row["step"]) for row in rows].count(batches + 1) == 1  # the resumed run's own
    assert [row["epoch"] for row in rows if row["test/l1"]] == ["3"]  # the earlier test's: gone


def test_a_checkpoint_of_another_model_is_refused_before_the_run_folder_is_touched(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(run, ["logger=csv"]))  # a U-Net
    curves = (run / "csv" / "metrics.csv").read_text()
    last = run / "checkpoints" / "last.ckpt"
    resume = tiny_config(run, ["experiment=ipn", "logger=csv", f"ckpt_path={last}"], model="ipn")
    with pytest.raises(
        ValueError, match=r"holds a model \(.*UNetInpainter\) that does not fit this run's "
    ) as refused:
        train(resume)
    # Its first few keys, not all of them: PyTorch lists every key on one line.
    assert re.search(
        r"Missing key\(s\) in state_dict: (\S+, ){3}\.\.\. \(\d+ in all\)", str(refused.value)
    )
    assert len(str(refused.value)) < 1000
    assert (run / "csv" / "metrics.csv").read_text() == curves
    assert "test/psnr" in json.loads((run / "metrics.json").read_text())


def test_a_bad_trainer_setting_is_refused_before_the_run_folder_is_touched(tmp_path):
    """Lightning checks its settings when the Trainer is built, and a resume's epochs only
    inside its fit: both come before anything of the earlier run is set aside."""
    run = tmp_path / "run"
    train(tiny_config(run, ["logger=csv"]))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    last = run / "checkpoints" / "last.ckpt"
    refusals = {
        "trainer.precision=bf16_mixed": r"Precision 'bf16_mixed' is invalid",
        f"ckpt_path={last} trainer.precision=bf16_mixed": r"Precision 'bf16_mixed' is invalid",
        f"ckpt_path={last} trainer.max_epochs=0": (
            r"trainer.max_epochs=0, but .*last.ckpt has run 1 epochs: "
            r"give trainer.max_epochs=1 or more"
        ),
    }
    for overrides, error in refusals.items():
        with pytest.raises(Exception, match=error):
            train(tiny_config(run, ["logger=csv", *overrides.split()]))
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_wandb_sample_panels_sit_at_the_step_of_their_epochs_metrics(tmp_path, monkeypatch):
    """A GAN's global_step counts two optimiser steps per batch; Lightning logs metrics by
    batch: each validation's picture must sit beside its own metrics on the W&B step axis."""
    from lightning.pytorch.loggers import WandbLogger

    from inpaint.callbacks import SampleGrids

    logged: dict[str, list] = {"val/samples": [], "val/psnr": []}
    log_metrics = WandbLogger.log_metrics

    def recording(self, metrics, step=None):
        for key in set(logged) & set(metrics):
            logged[key].append(step)
        log_metrics(self, metrics, step)

    monkeypatch.setattr(WandbLogger, "log_metrics", recording)
    for variable in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # W&B's staged files: not in $HOME
        monkeypatch.setenv(variable, str(tmp_path / "wandb"))
    cfg = tiny_config(tmp_path, ["experiment=ipn"], model="ipn")
    model = instantiate(cfg.model, _convert_="all")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    trainer = instantiate(
        cfg.trainer,
        max_epochs=2,
        logger=logger,
        callbacks=[SampleGrids(str(tmp_path / "samples"))],
        enable_checkpointing=False,
    )
    trainer.fit(model, instantiate(cfg.data, mask=instantiate(cfg.mask)))
    logger.experiment.finish()
    assert trainer.global_step == 2 * 2 * 2  # two epochs of two batches, two steps each
    assert len(logged["val/psnr"]) == 2 and logged["val/samples"] == logged["val/psnr"]


class SigtermInSecondEpoch(L.Callback):
    """Sends its own process SIGTERM, as a scheduler or `kill` does, once the first epoch's
    checkpoint is written (where STOP_IN_SECOND_EPOCH is set: not in the resume)."""

    def on_train_batch_end(self, trainer, *args):
        if trainer.current_epoch == 1 and os.environ.get("STOP_IN_SECOND_EPOCH"):
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_run_stopped_by_sigterm_exits_non_zero_and_says_how_to_resume(tmp_path):
    """Lightning ends a SIGTERM-stopped fit with exit status 0; a sweep or `make train && ...`
    would take it for a finished run. The advice is a whole command, which goes on."""
    stop = f"+callbacks.stop._target_={__name__}.SigtermInSecondEpoch"
    tiny = ["debug=fast", "data.image_size=32", "trainer.max_epochs=2", *TINY_MODELS["unet"]]

    def run(command, **env):
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ | env
        )

    first = [sys.executable, "-m", "inpaint.run", *tiny, stop, f"hydra.run.dir={tmp_path}"]
    stopped = run(first, STOP_IN_SECOND_EPOCH="1")
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert not (tmp_path / "metrics.json").exists()
    advice = re.search(r"SIGTERM; resume with: python (.*)", stopped.stdout + stopped.stderr)
    command = shlex.split(advice.group(1))
    assert f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}" in command
    assert f"hydra.run.dir={tmp_path}" in command and "trainer.max_epochs=2" in command
    resumed = run([sys.executable, *command])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "test/psnr" in json.loads((tmp_path / "metrics.json").read_text())


def test_a_refused_command_leaves_the_hydra_record_of_the_run_in_its_folder(tmp_path):
    """Hydra writes `.hydra/` before the job: a refused command replaced the record of the
    run in that folder, which inpaint.tables reads. A new folder is recorded at once (tables
    counts the refused job as failed), an earlier record only once the checks pass."""

    def refused(*overrides, reason="does not log it"):
        tiny = ["debug=fast", "~logger", "data.image_size=32", *TINY_MODELS["unet"]]
        result = subprocess.run(
            [sys.executable, "-m", "inpaint.run", *tiny, f"hydra.run.dir={tmp_path}", *overrides],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 1 and reason in result.stderr, result.stderr
        return {path.name: path.read_text() for path in (tmp_path / ".hydra").iterdir()}

    first = refused("callbacks.model_checkpoint.monitor=val/nope")
    assert sorted(first) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert "callbacks.model_checkpoint.monitor=val/nope" in first["overrides.yaml"]
    assert "monitor: val/nope" in first["config.yaml"]
    assert refused("optimized_metric=val/other") == first
    missing = tmp_path / "missing.ckpt"
    assert refused("train=false", f"ckpt_path={missing}", reason="does not exist") == first
    # Each refusal's overrides and reason are in the log file the three runs share.
    log_lines = (tmp_path / "run.log").read_text().splitlines()
    starts = [line for line in log_lines if "started with overrides:" in line]
    failures = [line for line in log_lines if "failed: " in line]
    assert len(starts) == len(failures) == 3 and "train=false" in starts[-1]
    assert "ValueError: " in failures[0] and "does not log it" in failures[0]
    assert f"FileNotFoundError: ckpt_path={missing} does not exist" in failures[-1]


@pytest.mark.parametrize("saved", ["weights", "tensor"])
def test_a_weights_or_tensor_file_is_not_taken_for_a_checkpoint(tmp_path, saved):
    weights = tmp_path / "weights.pt"
    model = instantiate(tiny_config(tmp_path).model)
    torch.save(model.state_dict() if saved == "weights" else torch.zeros(3), weights)
    with pytest.raises(ValueError, match=r"weights.pt is not a Lightning checkpoint"):
        train(tiny_config(tmp_path / "run", [f"ckpt_path={weights}", "train=false"]))


def test_a_folder_given_as_checkpoint_is_named_as_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"ckpt_path=.* is a folder: .*last.ckpt"):
        train(tiny_config(tmp_path / "run", [f"ckpt_path={tmp_path}", "train=false"]))


def test_testing_an_earlier_checkpoint_in_place_keeps_every_earlier_row(tmp_path):
    """Only training goes on from a checkpoint; a test adds its rows to all the earlier ones."""
    monitor = "callbacks.model_checkpoint.monitor=val/psnr_input"  # best: the first epoch
    train(tiny_config(tmp_path, ["logger=csv", monitor, "trainer.max_epochs=2"]))
    curves = tmp_path / "csv" / "metrics.csv"
    with curves.open(newline="") as handle:
        earlier = list(csv.DictReader(handle))
    (best,) = (tmp_path / "checkpoints").glob("best-epoch000.ckpt")
    train(tiny_config(tmp_path, ["logger=csv", "train=false", f"ckpt_path={best}"]))
    with curves.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows[: len(earlier)]] == [row["step"] for row in earlier]
    assert len(rows) == len(earlier) + 1 and rows[-1]["test/psnr"]
