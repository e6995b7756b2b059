"""Two CPU processes (gloo): distinct samples per rank, one run directory, one set of files."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import TINY_MODELS, quiet_trainer, run_module, tiny_config


class RecordSamples(L.Callback):
    """Test probe: each rank appends the sample indices it trains on, and each sample's hole
    area, to its own files."""

    def __init__(self, folder):
        self.folder = folder

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        areas = batch["mask"].flatten(1).sum(1)
        for name, values in (("indices", batch["index"]), ("areas", areas)):
            with (self.folder / f"{name}{trainer.global_rank}.txt").open("a") as handle:
                handle.write(" ".join(str(v) for v in values.tolist()) + "\n")


class RecordWeights(L.Callback):
    """Test probe: each rank writes the sum of each network's weights after training."""

    def __init__(self, folder):
        self.folder = folder

    def on_train_end(self, trainer, module):
        sums = {
            name: sum(p.detach().double().sum().item() for p in getattr(module, name).parameters())
            for name in ("generator", "discriminator")
        }
        (self.folder / f"weights{trainer.global_rank}.json").write_text(json.dumps(sums))


def test_each_rank_trains_a_gan_on_its_own_samples_and_masks_with_weights_kept_in_sync(tmp_path):
    """Each rank sees other images and masks, so both networks' weights stay equal only if
    every step's gradients (the discriminator's, then the generator's) are averaged."""
    overrides = ["experiment=ipn", "data.batch_size=4", "data.train_length=16"]
    cfg = tiny_config(tmp_path, overrides, model="ipn")
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    model = instantiate(cfg.model, _convert_="all")
    trainer = quiet_trainer(
        strategy="ddp_spawn_find_unused_parameters_true",  # conf/trainer/ddp*.yaml, spawned
        devices=2,
        limit_train_batches=None,
        limit_val_batches=0,
        callbacks=[RecordSamples(tmp_path), RecordWeights(tmp_path)],
    )
    trainer.fit(model, datamodule)

    def recorded(name, rank):
        return (tmp_path / f"{name}{rank}.txt").read_text().split()

    seen = {rank: recorded("indices", rank) for rank in (0, 1)}
    assert len(seen[0]) == len(seen[1]) == 8  # 16 crops, 2 per process per step of 4
    assert not set(seen[0]) & set(seen[1])
    # Same torch seed on both ranks, yet each draws its own masks (the rank is in the seed).
    areas = {rank: recorded("areas", rank) for rank in (0, 1)}
    assert sum(a != b for a, b in zip(areas[0], areas[1], strict=True)) >= 6
    weights = [json.loads((tmp_path / f"weights{rank}.json").read_text()) for rank in (0, 1)]
    assert weights[0] == pytest.approx(weights[1], rel=1e-9)


def test_batch_size_that_does_not_divide_is_a_clear_error(tmp_path):
    cfg = tiny_config(tmp_path, ["data.batch_size=5"])
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    datamodule.trainer = type("FakeTrainer", (), {"world_size": 2})()
    with pytest.raises(ValueError, match="data.batch_size=5 does not divide among 2 processes"):
        datamodule.train_dataloader()


def test_a_split_smaller_than_the_global_batch_still_trains_on_every_process(tmp_path):
    """16 crops, batch 32 over 8 processes: 2 crops each, a partial batch of 4, kept."""
    cfg = tiny_config(tmp_path, ["data.batch_size=32", "data.train_length=16"])
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    datamodule.trainer = type("FakeTrainer", (), {"world_size": 8})()
    loader = datamodule.train_dataloader()
    assert loader.batch_size == 4 and not loader.drop_last
    cfg = tiny_config(tmp_path, ["data.batch_size=32", "data.train_length=40"])
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    datamodule.trainer = type("FakeTrainer", (), {"world_size": 8})()
    assert datamodule.train_dataloader().drop_last  # 5 crops each: one full batch of 4


def test_ddp_cpu_run_of_a_gan_writes_one_run_directory(tmp_path):
    logs = tmp_path / "logs"
    run_dir = logs / "the_run"
    run_module(
        "inpaint.run",
        "trainer=ddp_cpu",
        "experiment=ipn",
        "debug=fast",
        "data.batch_size=4",
        "data.image_size=32",
        *TINY_MODELS["ipn"],
        f"paths.log_dir={logs}",
        f"hydra.run.dir={run_dir}",
    )
    assert [p.name for p in logs.iterdir()] == ["the_run"]
    assert "test/psnr" in json.loads((run_dir / "metrics.json").read_text())
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == [
        "test.png",
        "val_epoch000.png",
    ]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] > 0
    # The job's record is the launching process's; Lightning's second process runs the
    # job again under another name, and writes none.
    record = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra
    assert record.job.name == "run" and "ddp_process" not in str(record.overrides)
