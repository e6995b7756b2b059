"""The LightningModules: GAN step order, precision, and one real step per experiment."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader

from inpaint.config import compose_config
from inpaint.models.gan import GANModule, judge_together
from inpaint.networks.epn import PatchDiscriminator
from inpaint.networks.ipn import SNPatchGANDiscriminator
from tests.conftest import TINY_MODELS
from tests.conftest import quiet_trainer as trainer


def build(experiment: str, overrides: list[str] | None = None):
    cfg = compose_config(
        "train",
        [
            f"experiment={experiment}",
            "debug=fast",
            "data.image_size=32",
            *TINY_MODELS[experiment],
            *(overrides or []),
        ],
    )
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    return instantiate(cfg.model), datamodule


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("experiment", ["epn", "ipn"])
def test_discriminator_steps_first_and_each_step_touches_only_its_network(experiment):
    model, datamodule = build(experiment)
    events = []

    def watch(optimizer, name, own, other):
        step = optimizer.step

        def recorded_step(*args, **kwargs):
            own_before, other_before = snapshot(own), snapshot(other)
            result = step(*args, **kwargs)
            events.append((name, changed(own_before, own), changed(other_before, other)))
            return result

        optimizer.step = recorded_step

    configure = model.configure_optimizers

    def configure_and_watch():
        g_opt, d_opt = configure()
        watch(g_opt, "generator", model.generator, model.discriminator)
        watch(d_opt, "discriminator", model.discriminator, model.generator)
        return [g_opt, d_opt]

    model.configure_optimizers = configure_and_watch
    trainer(limit_train_batches=2, num_sanity_val_steps=0, limit_val_batches=0).fit(
        model, datamodule
    )
    assert [name for name, _, _ in events] == ["discriminator", "generator"] * 2
    assert all(own and not other for _, own, other in events)


@pytest.mark.parametrize("experiment", ["epn", "ipn"])
def test_warm_up_trains_the_generator_alone_without_its_adversarial_term(experiment):
    model, datamodule = build(experiment, ["model.adversarial_start_epoch=1"])
    discriminator = snapshot(model.discriminator)
    generator = snapshot(model.generator)
    fit = trainer(num_sanity_val_steps=0, limit_val_batches=0)
    fit.fit(model, datamodule)
    assert changed(generator, model.generator)
    assert not changed(discriminator, model.discriminator)
    logged = {k for k in fit.callback_metrics if k.startswith("train/g_")}
    assert "train/g_loss" in logged and "train/g_adversarial" not in logged


def first_training_batch(datamodule) -> dict[str, torch.Tensor]:
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader()))


def test_epn_warm_up_loss_is_the_weighted_feature_matching_alone():
    model, datamodule = build("epn", ["model.feature_matching_weight=7"])
    batch = first_training_batch(datamodule)
    terms = model.generator_loss(batch, model.generate(batch), adversarial=False)
    assert "adversarial" not in terms
    torch.testing.assert_close(terms["loss"], 7 * terms["feature_matching"])


@pytest.mark.parametrize(
    ("experiment", "term"),
    [("epn", "feature_matching"), ("joint_epn_mpn", "edge_feature_matching")],
)
def test_feature_matching_trains_the_edge_generator(experiment, term):
    """The real features are the target: the gradient reaches the generator through the fake
    ones (detaching the wrong side gives the same value and none)."""
    model, datamodule = build(experiment)
    batch = first_training_batch(datamodule)
    terms = model.generator_loss(batch, model.generate(batch), adversarial=False)
    terms[term].backward()
    generator = model.generator if experiment == "epn" else model.generator["epn"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


@pytest.mark.parametrize("experiment", ["mpn", "epn", "ipn"])
def test_one_step_under_bf16_mixed_on_cpu(experiment):
    model, datamodule = build(experiment)
    before = snapshot(model)
    fit = trainer(precision="bf16-mixed", num_sanity_val_steps=0)
    fit.fit(model, datamodule)
    assert changed(before, model)
    metrics = fit.callback_metrics
    assert all(
        torch.isfinite(v)
        for k, v in metrics.items()
        if k.startswith(("train/", "val/")) and "psnr" not in k
    )


@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_a_gan_refuses_a_precision_its_discriminator_cannot_take(precision):
    model, datamodule = build("ipn")
    with pytest.raises(ValueError, match=f"trainer.precision={precision}: IPNModule trains in"):
        trainer(precision=precision).fit(model, datamodule)


def test_edge_and_inpainting_modules_use_their_paper_optimisers():
    epn, _ = build("epn")
    g_opt, d_opt = epn.configure_optimizers()
    assert g_opt.defaults["betas"] == (0.0, 0.9) and g_opt.defaults["lr"] == pytest.approx(1e-4)
    assert d_opt.defaults["lr"] == pytest.approx(0.1 * g_opt.defaults["lr"])
    ipn, _ = build("ipn")
    g_opt, d_opt = ipn.configure_optimizers()
    assert g_opt.defaults["betas"] == (0.5, 0.999) and g_opt.defaults["lr"] == pytest.approx(1e-4)
    assert isinstance(epn, GANModule) and isinstance(ipn, GANModule)


def test_missing_vgg_weights_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "vgg19.pth"
    with pytest.raises(Exception, match=f"VGG19 weights file not found: {missing}"):
        build("ipn", [f"model.vgg_weights={missing}"])


def vgg19_state() -> dict[str, torch.Tensor]:
    """Random VGG19 weights in torchvision's key layout."""
    from inpaint.networks.vgg import VGG19_LAYERS

    state, index, channels = {}, 0, 3
    for spec in VGG19_LAYERS:
        if spec == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(spec, channels, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(spec)
        channels, index = spec, index + 2
    return state


def test_a_vgg_file_of_other_shapes_or_not_torchs_is_a_clear_error(tmp_path):
    from inpaint.networks.vgg import VGG19Features

    narrow = vgg19_state()
    narrow["features.0.weight"] = narrow["features.0.weight"][:32]
    torch.save(narrow, tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match=r"narrow\.pth is not a VGG19 state dict: size mismatch"):
        VGG19Features(tmp_path / "narrow.pth")
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(ValueError, match=r"text\.pth is not a VGG19 state dict that torch can"):
        VGG19Features(tmp_path / "text.pth")


def test_perceptual_and_style_losses_train_with_a_local_vgg_file(tmp_path):
    torch.save(vgg19_state(), tmp_path / "vgg19.pth")
    model, datamodule = build("ipn", [f"model.vgg_weights={tmp_path / 'vgg19.pth'}"])
    fit = trainer(num_sanity_val_steps=0, limit_val_batches=0)
    fit.fit(model, datamodule)
    assert "train/g_style" in fit.callback_metrics and "train/g_perceptual" in fit.callback_metrics
    assert all(not p.requires_grad for p in model.vgg.parameters())


def test_judging_real_and_fake_together_equals_judging_each_alone():
    """One discriminator call on both batches gives each batch's own logits and features."""
    torch.manual_seed(0)
    real, fake = torch.rand(3, 2, 64, 48), torch.rand(3, 2, 64, 48)
    edge_critic = PatchDiscriminator(in_channels=2, base=8).eval()
    (real_logits, real_features), (fake_logits, fake_features) = judge_together(
        edge_critic, real, fake
    )
    for image, logits, features in (
        (real, real_logits, real_features),
        (fake, fake_logits, fake_features),
    ):
        alone_logits, alone_features = edge_critic(image)
        torch.testing.assert_close(logits, alone_logits)
        assert len(features) == len(alone_features)
        for together, alone in zip(features, alone_features, strict=True):
            torch.testing.assert_close(together, alone)

    image_critic = SNPatchGANDiscriminator(in_channels=2, cnum=8).eval()
    real_scores, fake_scores = judge_together(image_critic, real, fake)
    torch.testing.assert_close(real_scores, image_critic(real))
    torch.testing.assert_close(fake_scores, image_critic(fake))


class LinearGAN(GANModule):
    """A GAN of two linear layers: the step logic of GANModule alone."""

    def generate(self, batch):
        return {"output": self.generator(batch["x"])}

    def discriminator_loss(self, batch, fake):
        return self.discriminator(fake["output"]).mean()

    def generator_loss(self, batch, fake, adversarial):
        return {"loss": (fake["output"] - 3).square().mean()}


def test_each_parameter_group_is_clipped_to_its_own_norm():
    """The composite's stages share one optimizer, a group each: a small stage's gradient
    must not shrink with the largest's."""
    sgd = partial(torch.optim.SGD, lr=0.0)
    model = LinearGAN(nn.Linear(4, 4), nn.Linear(4, 1), sgd, sgd, {}, gradient_clip_val=1.0)
    large, small = nn.Linear(4, 4), nn.Linear(4, 4)
    for layer, scale in ((large, 10.0), (small, 0.1)):
        for parameter in layer.parameters():
            parameter.grad = torch.full_like(parameter, scale)
    optimizer = torch.optim.SGD([{"params": large.parameters()}, {"params": small.parameters()}])
    before = torch.nn.utils.get_total_norm([p.grad for p in small.parameters()]).item()
    model.on_before_optimizer_step(optimizer)
    norms = [
        torch.nn.utils.get_total_norm([p.grad for p in layer.parameters()]).item()
        for layer in (large, small)
    ]
    assert norms == pytest.approx([1.0, before], rel=1e-5)


def test_gradients_are_clipped_at_their_true_norm_under_a_loss_scaler():
    """With 16-mixed a GradScaler multiplies the loss; the clip must see unscaled gradients."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    torch.manual_seed(0)
    sgd = partial(torch.optim.SGD, lr=0.0)  # the gradients stay after the step: inspect them
    model = LinearGAN(nn.Linear(4, 4), nn.Linear(4, 1), sgd, sgd, {}, gradient_clip_val=0.01)
    data = DataLoader([{"x": torch.randn(4)} for _ in range(4)], batch_size=4)
    scaler = torch.amp.GradScaler("cpu")
    fit = trainer(plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], limit_val_batches=0)
    fit.fit(model, data)
    assert scaler.get_scale() > 1
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.generator.parameters()])
    assert norm.item() == pytest.approx(0.01, rel=1e-2)
