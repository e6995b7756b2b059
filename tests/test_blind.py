"""The composite MPN -> EPN -> IPN module: each mode trains, stages load from real runs."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from inpaint.inference import Inpainter
from inpaint.run import train
from tests.conftest import TINY_MODELS, scored_test_batches, tiny_config
from tests.conftest import quiet_trainer as trainer


def blind_model(tmp_path, overrides: list[str]):
    cfg = tiny_config(tmp_path, ["experiment=blind", *overrides], model="blind")
    return instantiate(cfg.model, _convert_="all"), cfg


def test_chain_outputs_and_composite_keeps_intact_pixels(tmp_path):
    model, _ = blind_model(tmp_path, [])
    damaged = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        result = model.run_chain(damaged)
    assert (
        result["mask"].shape == (2, 1, 32, 32)
        and 0 <= result["mask"].min() <= result["mask"].max() <= 1
    )
    assert result["edges"].shape == (2, 1, 32, 32)
    assert result["output"].shape == (2, 3, 32, 32)
    mask = result["mask"]
    expected = mask * result["refined"] + (1 - mask) * damaged
    assert torch.allclose(result["output"], expected)
    # Outside the predicted hole the edges are the Canny edges of the input.
    outside = mask < 0.5
    assert torch.equal(result["edges"][outside].round(), result["known_edges"][outside])


def test_a_given_mask_replaces_the_predicted_one(tmp_path):
    """No MPN runs; only the given hole changes, with no `intact_below` threshold applied."""
    model, _ = blind_model(tmp_path, [])
    damaged = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:16, 8:24] = 1
    mask[..., 20, 4:28] = 0.05  # faint damage, below the threshold for predicted masks
    with torch.no_grad():
        chain = model.run_chain(damaged, mask)
    assert chain["mask"] is mask and "mask_logits" not in chain
    inpainter = Inpainter(model)
    output = inpainter(damaged, mask)["output"]
    assert torch.equal(output[mask.expand_as(output) == 0], damaged[mask.expand_as(damaged) == 0])
    assert not torch.equal(output[..., 20, 4:28], damaged[..., 20, 4:28])
    with torch.no_grad():
        for parameter in model.generator["mpn"].parameters():
            parameter.add_(1.0)
    assert torch.equal(inpainter(damaged, mask)["output"], output)


def test_the_image_discriminator_trains_the_chain_by_its_painting_not_by_its_condition(
    tmp_path,
):
    """The predicted mask and edges condition the image discriminator: its verdict reaches
    the MPN and EPN through the painted output only, not by changing what it is shown."""
    model, _ = blind_model(tmp_path, [])
    image = torch.rand(2, 3, 32, 32)
    batch = {
        "image": image,
        "mask": (torch.rand(2, 1, 32, 32) > 0.8).float(),
        "gray": image.mean(1, keepdim=True),
        "edge": (torch.rand(2, 1, 32, 32) > 0.9).float(),
    }
    fake = model.run_chain(image)
    shown = {key: fake[key].detach().requires_grad_() for key in ("output", "mask", "edges")}
    terms = model.generator_loss(batch, {**fake, **shown}, adversarial=True)
    terms["image_adversarial"].backward()
    assert shown["output"].grad.abs().sum() > 0
    assert shown["mask"].grad is None and shown["edges"].grad is None


@pytest.mark.parametrize("experiment", ["joint_epn_mpn", "blind"])
def test_each_mode_trains_end_to_end_and_writes_its_metrics(experiment, tmp_path):
    cfg = tiny_config(tmp_path, [f"experiment={experiment}"], model=experiment)
    metrics = train(cfg)
    for key in ("test/mask_iou", "test/edge_psnr", "test/edge_recall"):
        assert key in metrics and metrics[key] == metrics[key]  # present, not NaN
    # The trivial masks' scores depend on the seeded test masks alone.
    masks = torch.cat([batch["mask"] for batch in scored_test_batches(cfg)])
    assert metrics["test/mask_iou_empty"] == 0
    assert metrics["test/mask_iou_full"] == pytest.approx((masks >= 0.5).float().mean().item())
    assert ("test/psnr_hole" in metrics) == (experiment == "blind")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


@pytest.fixture(scope="module")
def stage_checkpoints(tmp_path_factory):
    """Real checkpoints written by short Table 1 runs at the toy widths of the blind config."""
    paths = {}
    widths = {
        "mpn": ["model.net.base=8", "model.net.levels=2"],
        "epn": TINY_MODELS["epn"],
        "ipn": TINY_MODELS["ipn"],
    }
    for stage, overrides in widths.items():
        run = tmp_path_factory.mktemp(stage)
        cfg = tiny_config(run, [f"experiment={stage}", *overrides], model=stage)
        train(cfg)
        paths[stage] = run / "checkpoints" / "last.ckpt"
    return paths


def stage_overrides(paths, freeze="[mpn,epn]"):
    return ["model.mode=staged", f"model.freeze={freeze}"] + [
        f"model.stage_checkpoints.{stage}={path}" for stage, path in paths.items()
    ]


def test_staged_loads_every_stage_from_its_run_and_trains_only_the_unfrozen(
    tmp_path, stage_checkpoints
):
    model, _ = blind_model(tmp_path, stage_overrides(stage_checkpoints))
    saved = torch.load(stage_checkpoints["epn"], weights_only=False)["state_dict"]
    loaded = model.generator["epn"].state_dict()
    assert all(
        torch.equal(loaded[k.removeprefix("generator.")], v)
        for k, v in saved.items()
        if k.startswith("generator.")
    )
    # Buffers too: the MPN's batch-norm statistics, the EPN's spectral-norm vectors.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = tiny_config(
        tmp_path / "run", ["experiment=blind", *stage_overrides(stage_checkpoints)], model="blind"
    )
    train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    after = torch.load(last, weights_only=False)["state_dict"]
    assert any("running_mean" in k for k in before if k.startswith("generator.mpn."))
    assert any(k.endswith("weight_u") for k in before if k.startswith("generator.epn."))
    assert changed_stages(before, after) == {"ipn"}

    # The fine-tuned chain inpaints from its own checkpoint, no stage checkpoints needed.
    inpainter = Inpainter.from_checkpoint(last)
    assert inpainter.kind == "blind"
    assert inpainter(torch.rand(1, 3, 32, 32))["output"].shape == (1, 3, 32, 32)


def changed_stages(before: dict, after: dict) -> set[str]:
    """The stages (generator.mpn..., discriminator.epn... -> mpn, epn) whose state changed."""
    return {k.split(".")[1] for k, v in before.items() if not torch.equal(after[k], v)}


@pytest.mark.parametrize(
    "experiment, freeze",
    [("joint_epn_mpn", ["epn"]), ("blind", ["epn", "ipn"]), ("blind", ["mpn", "ipn"])],
)
def test_a_stage_trains_through_frozen_discriminators(tmp_path, experiment, freeze):
    cfg = tiny_config(
        tmp_path, [f"experiment={experiment}", f"model.freeze=[{','.join(freeze)}]"], experiment
    )
    model = instantiate(cfg.model, _convert_="all")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer(num_sanity_val_steps=0, limit_val_batches=0).fit(
        model, instantiate(cfg.data, mask=instantiate(cfg.mask))
    )
    assert changed_stages(before, model.state_dict()) == set(model.stages) - set(freeze)


def test_loading_the_wrong_network_or_width_is_a_clear_error(tmp_path, stage_checkpoints):
    swapped = dict(stage_checkpoints, mpn=stage_checkpoints["epn"])
    with pytest.raises(
        InstantiationException, match="is a checkpoint of .*EPNModule, not of MPNModule"
    ):
        blind_model(tmp_path, stage_overrides(swapped))
    with pytest.raises(
        InstantiationException, match="the epn generator weights do not fit this network"
    ):
        blind_model(tmp_path, [*stage_overrides(stage_checkpoints), "model.epn_generator.base=16"])


def test_staged_without_every_checkpoint_and_bad_freeze_are_clear_errors(
    tmp_path, stage_checkpoints
):
    with pytest.raises(InstantiationException, match="give model.stage_checkpoints.ipn=PATH"):
        blind_model(
            tmp_path,
            [
                "model.mode=staged",
                f"model.stage_checkpoints.mpn={stage_checkpoints['mpn']}",
                f"model.stage_checkpoints.epn={stage_checkpoints['epn']}",
            ],
        )
    with pytest.raises(InstantiationException, match="leaves nothing to train"):
        blind_model(tmp_path, stage_overrides(stage_checkpoints, freeze="[mpn,epn,ipn]"))
    with pytest.raises(
        InstantiationException,
        match="model.stage_checkpoints.ipn is given, but model.mode=joint_epn_mpn has no ipn",
    ):
        blind_model(
            tmp_path,
            ["model.mode=joint_epn_mpn", f"model.stage_checkpoints.ipn={stage_checkpoints['ipn']}"],
        )


def test_training_a_chain_with_a_stage_frozen_at_random_is_refused(tmp_path, stage_checkpoints):
    overrides = ["experiment=blind", "~logger", "model.freeze=[mpn,epn]"]
    epn = f"model.stage_checkpoints.epn={stage_checkpoints['epn']}"
    with pytest.raises(ValueError, match=r"freezes mpn, which no model.stage_checkpoints loads"):
        train(tiny_config(tmp_path / "run", [*overrides, epn], "blind"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_one_frozen_stage_may_be_named_without_brackets(tmp_path):
    model, _ = blind_model(tmp_path, ["model.freeze=mpn"])
    assert model.frozen == ("mpn",)
    assert not any(p.requires_grad for p in model.generator["mpn"].parameters())
    assert all(p.requires_grad for p in model.generator["epn"].parameters())


@pytest.mark.parametrize(
    "model, name, monitor",
    [
        ("blind", "BlindInpainter", "psnr"),
        ("epn", "EPNModule", "edge_f1"),
        ("ipn", "IPNModule", "psnr"),
    ],
)
def test_an_edge_model_without_edges_in_its_data_is_refused_before_its_first_step(
    tmp_path, model, name, monitor
):
    overrides = [f"model={model}", f"callbacks.model_checkpoint.monitor=val/{monitor}"]
    overrides.append(f"optimized_metric=val/{monitor}")
    cfg = tiny_config(tmp_path / "run", overrides, model=model)
    with pytest.raises(ValueError, match=rf"{name} needs edges .* \+edges@data.edges=canny"):
        train(cfg)


@pytest.mark.parametrize("key", ["edge_adversarial", "image_adversarial"])
def test_an_unknown_adversarial_loss_names_its_key(tmp_path, key):
    with pytest.raises(InstantiationException, match=f"model.{key} must be one of"):
        blind_model(tmp_path, [f"model.{key}=wgan"])


def test_resuming_with_other_stages_frozen_is_refused_by_name(tmp_path):
    """The optimisers' state holds one parameter group per trained stage."""
    cfg = tiny_config(tmp_path / "run", ["experiment=blind", "~logger"], model="blind")
    train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    resume = ["experiment=blind", "~logger", f"ckpt_path={last}", "trainer.max_epochs=2"]
    frozen = tiny_config(tmp_path / "run", [*resume, "model.freeze=[mpn]"], model="blind")
    with pytest.raises(
        ValueError, match=r"trained with model.freeze=\[\], this run has .*\['mpn'\]"
    ):
        train(frozen)
    tested = [*resume, "train=false", "model.freeze=[mpn]"]
    assert "test/psnr" in train(tiny_config(tmp_path / "run", tested, model="blind"))


@pytest.mark.parametrize(
    "trained, resumed", [("mpn", "[mpn]"), ("[mpn,epn]", "[epn,mpn]"), ("null", "[]")]
)
def test_resuming_with_the_same_stages_frozen_goes_on(
    tmp_path, stage_checkpoints, trained, resumed
):
    """The same stages, however written (`freeze=mpn` is stored as the string; null is none)."""
    run = tmp_path / "run"
    loaded = [f"model.stage_checkpoints.{s}={p}" for s, p in stage_checkpoints.items()]
    first = ["experiment=blind", "~logger", f"model.freeze={trained}", *loaded]
    train(tiny_config(run, first, "blind"))
    last = run / "checkpoints" / "last.ckpt"
    resume = ["experiment=blind", "~logger", f"ckpt_path={last}", "trainer.max_epochs=2"]
    train(tiny_config(run, [*resume, f"model.freeze={resumed}"], model="blind"))
    assert torch.load(last, weights_only=False)["epoch"] == 1
