"""What the modules' losses, metrics and optimisers are wired to, and the networks' blocks:
each checked against the formula it implements, on toy widths."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from inpaint.data.edges import to_gray
from inpaint.models.epn_module import epn_judge_input
from inpaint.models.ipn_module import ipn_judge_input
from inpaint.models.losses import mask_loss
from inpaint.models.metrics import EdgeMetrics, ImageMetrics
from inpaint.networks import epn as epn_net
from inpaint.networks import mpn as mpn_net
from inpaint.networks.blocks import GatedConv2d
from inpaint.networks.ipn import InpaintGenerator
from tests.conftest import quiet_trainer as trainer
from tests.conftest import tiny_config
from tests.test_blind import blind_model
from tests.test_modules import LinearGAN, build, changed, first_training_batch, snapshot


def test_each_step_starts_from_zero_gradients():
    """Manual optimisation zeroes nothing by itself: a batch's gradients must not pile onto
    the previous batch's (two identical batches leave one batch's gradient)."""
    torch.manual_seed(0)
    sgd = partial(torch.optim.SGD, lr=0.0)  # the parameters stay put; the gradients remain
    x = torch.randn(4)
    grads = []
    for batches in (1, 2):
        torch.manual_seed(0)
        model = LinearGAN(nn.Linear(4, 4), nn.Linear(4, 1), sgd, sgd, {})
        data = DataLoader([{"x": x} for _ in range(8)], batch_size=4)
        trainer(limit_train_batches=batches, limit_val_batches=0).fit(model, data)
        grads.append([p.grad.clone() for p in model.parameters()])
    for one, two in zip(*grads, strict=True):
        torch.testing.assert_close(two, one)


@pytest.mark.parametrize("experiment", ["epn", "ipn"])
def test_adversarial_weight_zero_turns_the_gan_off(experiment):
    """`model.adversarial_weight=0` (experiments/README: "the adversarial term off"): no
    discriminator step, no adversarial term, one optimiser step per batch."""
    model, datamodule = build(experiment, ["model.adversarial_weight=0"])
    discriminator = snapshot(model.discriminator)
    fit = trainer(num_sanity_val_steps=0, limit_val_batches=0)
    fit.fit(model, datamodule)
    assert not changed(discriminator, model.discriminator)
    assert "train/d_loss" not in fit.callback_metrics
    assert "train/g_adversarial" not in fit.callback_metrics


def val_batches(datamodule, count: int = 2) -> list[dict]:
    datamodule.setup("validate")
    batches = []
    for batch in datamodule.val_dataloader():
        batches.append(batch)
        if len(batches) == count:
            return batches
    raise AssertionError("too few validation batches")


def validate(model, batches) -> dict[str, float]:
    fit = trainer(limit_val_batches=len(batches))
    (metrics,) = fit.validate(model, DataLoader(batches, batch_size=None), verbose=False)
    return metrics


def test_each_evaluation_epoch_scores_its_own_batches_alone():
    """The metric groups are reset after each epoch: a later epoch's numbers do not mix in
    an earlier epoch's images."""
    model, datamodule = build("mpn")
    first, second = val_batches(datamodule)
    alone = validate(model, [second])
    validate(model, [first])
    assert validate(model, [second]) == pytest.approx(alone)


def test_preview_is_the_first_evaluation_batch():
    """SampleGrids draws `module.preview`, "the first evaluation batch"."""
    model, datamodule = build("mpn")
    first, second = val_batches(datamodule)
    validate(model, [first, second])
    torch.testing.assert_close(model.preview["damaged"], first["damaged"])


@pytest.mark.parametrize("experiment", ["mpn", "epn", "ipn", "joint_epn_mpn"])
def test_logged_keys_are_the_keys_an_evaluation_epoch_logs(experiment):
    """`logged_keys` is what inpaint.run checks a monitored key against before training."""
    model, datamodule = build(experiment)
    logged = validate(model, val_batches(datamodule, 1))
    assert set(logged) == model.logged_keys("val")


def training_batch(cfg):
    return first_training_batch(instantiate(cfg.data, mask=instantiate(cfg.mask)))


def test_the_chain_loss_weighs_each_stage_by_its_loss_weight(tmp_path):
    weights = "model.loss_weights={mask:3.0,edge:0.5,image:2.0}"
    model, cfg = blind_model(tmp_path, [weights, "model.adversarial_weight=0.25"])
    batch = training_batch(cfg)
    fake = model.generate(batch)
    t = model.generator_loss(batch, fake, adversarial=True)
    torch.testing.assert_close(t["l1_refined"], F.l1_loss(fake["refined"], batch["image"]))
    torch.testing.assert_close(t["l1_coarse"], F.l1_loss(fake["coarse"], batch["image"]))
    edge = 10.0 * t["edge_feature_matching"] + 0.25 * t["edge_adversarial"]
    image = t["l1_coarse"] + t["l1_refined"] + 0.25 * t["image_adversarial"]
    torch.testing.assert_close(t["loss"], 3.0 * t["mask"] + 0.5 * edge + 2.0 * image)


def test_each_stage_gets_its_configured_adam_settings(tmp_path):
    model, cfg = blind_model(tmp_path, [])
    g_opt, d_opt = model.configure_optimizers()
    for optimizer, networks, settings in (
        (g_opt, model.generator, cfg.model.optimizer_groups),
        (d_opt, model.discriminator, cfg.model.discriminator_groups),
    ):
        assert len(optimizer.param_groups) == len(networks)
        for group, stage in zip(optimizer.param_groups, networks, strict=True):
            params = list(networks[stage].parameters())
            assert len(group["params"]) == len(params)
            assert all(a is b for a, b in zip(group["params"], params, strict=True))
            assert group["lr"] == pytest.approx(settings[stage].lr)
            assert tuple(group["betas"]) == tuple(settings[stage].get("betas", (0.9, 0.999)))


def test_the_chain_gives_the_edge_network_the_predicted_mask(tmp_path):
    """EPN input: grey damaged image, Canny edges outside the hole, and the mask."""
    model, _ = blind_model(tmp_path, [])
    damaged = torch.rand(2, 3, 32, 32)
    seen = []
    model.generator["epn"].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        chain = model.run_chain(damaged)
    (epn_input,) = seen
    assert epn_input.shape[1] == 3
    torch.testing.assert_close(epn_input[:, 1:2], chain["known_edges"])
    torch.testing.assert_close(epn_input[:, 2:3], chain["mask"])


def scores(output, batch) -> dict[str, float]:
    metrics = ImageMetrics()
    metrics.update(output, batch["image"], batch["mask"])
    return {k: v.item() for k, v in metrics.compute().items()}


@pytest.mark.parametrize("experiment", ["ipn", "blind"])
def test_image_metrics_score_the_composited_output(experiment, tmp_path):
    """The numbers are those of the image a user gets: the input kept where intact."""
    if experiment == "blind":
        model, cfg = blind_model(tmp_path, [])
        batch = training_batch(cfg)
    else:
        model, datamodule = build(experiment)
        batch = first_training_batch(datamodule)
    model.eval()
    with torch.no_grad():
        columns = model.evaluate("val", batch)
        fake = model.run_chain(batch["damaged"]) if experiment == "blind" else None
    if experiment == "ipn":  # the true mask: the damaged input kept where it is 0
        intact = (batch["mask"] == 0).expand_as(batch["damaged"])
        assert torch.equal(columns["output"][intact], batch["damaged"][intact])
    else:  # the predicted mask blends the paint in
        mask = fake["mask"]
        expected = mask * fake["refined"] + (1 - mask) * batch["damaged"]
        torch.testing.assert_close(columns["output"], expected)
    computed = {k: v.item() for k, v in model.metrics["val"]["image"].compute().items()}
    assert computed == pytest.approx(scores(columns["output"], batch))


def test_blind_edge_metrics_score_the_chain_edges_inside_the_true_hole(tmp_path):
    """Edge precision and recall are measured where the damage really is, as in evaluate,
    not where the chain thinks it is."""
    model, cfg = blind_model(tmp_path, [])
    batch = training_batch(cfg)
    # The MPN finds no damage, so the chain's edges are Canny's of the damaged image.
    model.generator["mpn"].register_forward_hook(lambda m, args, out: torch.full_like(out, -20))
    model.eval()
    with torch.no_grad():
        model.evaluate("val", batch)
        fake = model.run_chain(batch["damaged"])
    expected = EdgeMetrics()
    expected.update(fake["edges"], batch["edge"], batch["mask"])
    computed = model.metrics["val"]["edge"].compute()
    assert expected.compute()["edge_recall"] > 0  # the test's premise: edges in the hole
    for name, value in expected.compute().items():
        torch.testing.assert_close(computed[name], value, msg=name)


def hinge(real, fake):
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def nsgan(real, fake):
    bce = F.binary_cross_entropy_with_logits
    return (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))) / 2


def test_discriminator_losses_call_the_real_real_and_the_generated_fake(tmp_path):
    """The hinge (IPN) and nsgan (EPN) critics: real images and Canny edges are the real
    side; the IPN's composite, the EPN's and the chain's outputs the fake side."""
    with torch.no_grad():
        ipn, datamodule = build("ipn")
        batch = first_training_batch(datamodule)
        fake = ipn.generate(batch)
        d = ipn.discriminator.eval()  # no power iteration: every call sees the same weights
        completed = torch.where(batch["mask"] > 0, fake["refined"], batch["damaged"])
        real = d(ipn_judge_input(batch["image"], batch["mask"], batch["edge"]))
        generated = d(ipn_judge_input(completed, batch["mask"], batch["edge"]))
        torch.testing.assert_close(ipn.discriminator_loss(batch, fake), hinge(real, generated))

        epn, datamodule = build("epn")
        batch = first_training_batch(datamodule)
        fake = epn.generate(batch)
        d = epn.discriminator.eval()
        real, _ = d(epn_judge_input(batch["edge"], batch["gray"]))
        generated, _ = d(epn_judge_input(fake["edges"], batch["gray"]))
        torch.testing.assert_close(epn.discriminator_loss(batch, fake), nsgan(real, generated))

        chain, cfg = blind_model(tmp_path, [])
        batch = training_batch(cfg)
        fake = chain.generate(batch)
        chain.discriminator.eval()
        d_edge, d_image = chain.discriminator["epn"], chain.discriminator["ipn"]
        real, _ = d_edge(epn_judge_input(batch["edge"], batch["gray"]))
        generated, _ = d_edge(epn_judge_input(fake["predicted_edges"], batch["gray"]))
        expected = nsgan(real, generated)
        condition = fake["mask"], fake["edges"]
        real = d_image(ipn_judge_input(batch["image"], *condition))
        generated = d_image(ipn_judge_input(fake["output"], *condition))
        expected = expected + hinge(real, generated)
        torch.testing.assert_close(chain.discriminator_loss(batch, fake), expected)


def test_edge_module_reads_grey_edges_and_mask_and_keeps_the_known_edges():
    """EPN input: grey damaged image, its edges outside the hole, the mask; its full edge
    map is the prediction inside the hole and the known edges outside."""
    model, datamodule = build("epn")
    batch = first_training_batch(datamodule)
    seen = []
    model.generator.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        edges = model(batch["damaged"], batch["damaged_edge"], batch["mask"])
    (x,) = seen
    torch.testing.assert_close(x[:, :1], to_gray(batch["damaged"]))
    assert torch.equal(x[:, 1:2], batch["damaged_edge"]) and torch.equal(x[:, 2:], batch["mask"])
    intact = batch["mask"] == 0
    assert intact.any() and torch.equal(edges[intact], batch["damaged_edge"][intact])


def test_frozen_stages_stay_in_eval_mode_when_the_module_trains(tmp_path):
    model, _ = blind_model(tmp_path, ["model.freeze=[mpn,epn]"])
    model.train()
    assert model.generator["ipn"].training and model.discriminator["ipn"].training
    frozen = (model.generator["mpn"], model.generator["epn"], model.discriminator["epn"])
    assert not any(m.training for net in frozen for m in net.modules())


@pytest.mark.parametrize("experiment", ["epn", "ipn"])
def test_generator_loss_weighs_every_term(experiment):
    weights = ["model.adversarial_weight=0.25"]
    weights += (
        ["model.feature_matching_weight=7"]
        if experiment == "epn"
        else ["model.l1_coarse_weight=3", "model.l1_refined_weight=5"]
    )
    model, datamodule = build(experiment, weights)
    batch = first_training_batch(datamodule)
    fake = model.generate(batch)
    t = model.generator_loss(batch, fake, adversarial=True)
    if experiment == "epn":
        expected = 7 * t["feature_matching"]
    else:
        torch.testing.assert_close(t["l1_coarse"], F.l1_loss(fake["coarse"], batch["image"]))
        torch.testing.assert_close(t["l1_refined"], F.l1_loss(fake["refined"], batch["image"]))
        expected = 3 * t["l1_coarse"] + 5 * t["l1_refined"]
    torch.testing.assert_close(t["loss"], expected + 0.25 * t["adversarial"])


def test_gated_conv_is_activated_features_times_sigmoid_gate():
    """DeepFill v2: one conv to 2C channels, split, ELU(a) * sigmoid(b)."""
    torch.manual_seed(0)
    gated = GatedConv2d(3, 4, 3, dilation=2, activation=nn.ELU())
    x = torch.randn(2, 3, 12, 12)
    a, b = F.conv2d(x, gated.conv.weight, gated.conv.bias, padding=2, dilation=2).chunk(2, 1)
    torch.testing.assert_close(gated(x), F.elu(a) * torch.sigmoid(b))
    gated.activation = None  # the output layer: linear features, still gated
    torch.testing.assert_close(gated(x), a * torch.sigmoid(b))


def test_mask_module_gives_probabilities_weighs_grey_masks_and_scores_the_references():
    model, datamodule = build("mpn", ["model.l1_weight=3"])
    batch = first_training_batch(datamodule)
    logits = model.net(batch["damaged"])
    torch.testing.assert_close(model(batch["damaged"]), torch.sigmoid(logits))
    grey = {**batch, "mask": batch["mask"] * 0.5 + 0.25}  # continuous: the L1 branch
    torch.testing.assert_close(
        model.training_step(grey, 0), mask_loss(logits, grey["mask"], l1_weight=3)
    )
    metrics = validate(model, val_batches(datamodule, 1))
    assert metrics["val/mask_iou_empty"] == 0
    assert metrics["val/mask_iou_full"] < 1 and metrics["val/mask_iou_full"] > 0


def test_unet_trains_on_mse_and_scores_its_output(tmp_path):
    cfg = tiny_config(tmp_path, ["experiment=unet_lines"])
    model = instantiate(cfg.model, _convert_="all")
    batch = training_batch(cfg)
    output = model(batch["damaged"])
    torch.testing.assert_close(model.training_step(batch, 0), F.mse_loss(output, batch["image"]))
    with torch.no_grad():
        columns = model.evaluate("val", batch)
    computed = {k: v.item() for k, v in model.metrics["val"]["image"].compute().items()}
    assert computed == pytest.approx(scores(columns["output"], batch))
    assert computed != pytest.approx(scores(batch["damaged"], batch))


def test_coarse_stage_reads_image_mask_and_edges_and_maps_tanh_to_unit_range():
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    damaged, mask = torch.rand(1, 3, 32, 32), (torch.rand(1, 1, 32, 32) > 0.7).float()
    edge = (torch.rand(1, 1, 32, 32) > 0.9).float()
    seen = []
    net.coarse.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        coarse, _ = net(damaged, mask, edge)
    ((x, out),) = seen
    torch.testing.assert_close(x[:, :3], damaged * 2 - 1)
    assert torch.equal(x[:, 3:4], mask) and torch.equal(x[:, 4:], edge)
    torch.testing.assert_close(coarse, (out + 1) / 2)


def test_residual_blocks_add_their_input():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 12)
    block = epn_net.ResidualBlock(8, epn_net._ConvFactory("plain", False))
    torch.testing.assert_close(block(x), x + block.body(x))  # no ReLU after the sum
    block = mpn_net.ResidualBlock(8).eval()
    torch.testing.assert_close(block(x), torch.relu(x + block.body(x)))


@pytest.mark.parametrize(("experiment", "critic"), [("ipn", "hinge"), ("epn", "nsgan")])
def test_a_gan_left_without_an_adversarial_key_uses_its_papers_loss(experiment, critic):
    """DeepFill v2's hinge loss for the IPN, EdgeConnect's nsgan for the EPN, when a config
    of one's own leaves `model.adversarial` out."""
    model, _ = build(experiment, ["~model.adversarial"])
    assert model.adversarial == critic
