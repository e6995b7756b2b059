"""Manual-optimisation GAN training shared by the edge and inpainting modules.

Per batch: the generator runs forward once; the discriminator takes its step on the detached
output; then the generator's loss is computed against the updated discriminator and the
generator steps. Nothing is stepped before a backward pass that goes through it (the
in-place error of EdgeConnect on current PyTorch cannot happen).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from inpaint.models.base import InpaintingModule
from inpaint.models.losses import ADVERSARIAL


def judge_together(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor):
    """The discriminator's outputs for `real` and `fake`, from one call on both batches.

    One call computes each spectral-normalised weight once (its division and backward cost
    as much as a small convolution) and runs the convolutions on a batch twice as large.
    The discriminators here have no batch statistics, so the scores equal two calls'; the
    spectral-norm power iteration advances once per call instead of twice.
    Returns (real outputs, fake outputs), each shaped like one call's output (a tensor, or
    the EPN discriminator's (logits, features) pair).
    """
    judged = discriminator(torch.cat([real, fake]))
    return split_halves(judged)


def split_halves(judged):
    """Split a tensor, or a (possibly nested) tuple or list of them, along the batch."""
    if isinstance(judged, torch.Tensor):
        return tuple(judged.chunk(2))
    halves = [split_halves(item) for item in judged]
    return type(judged)(h[0] for h in halves), type(judged)(h[1] for h in halves)


class GANModule(InpaintingModule):
    """Subclasses implement `generate`, `discriminator_loss` and `generator_loss`.

    `adversarial_start_epoch` > 0 leaves out the adversarial terms, and the discriminator's
    step, for that many epochs: the IPN trains on its L1 terms alone; the EPN, which has no
    reconstruction term, on feature matching against its untrained discriminator.
    `gradient_clip_val` clips each network's gradient norm before its step. Lightning
    counts every optimiser step in `global_step`: two per batch while the discriminator
    trains, so `trainer.max_steps` stops a GAN after half as many batches as a U-Net.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        g_optimizer: Callable,
        d_optimizer: Callable,
        metric_groups: dict[str, type],
        adversarial: str = "nsgan",
        adversarial_weight: float = 1.0,
        adversarial_start_epoch: int = 0,
        gradient_clip_val: float | None = None,
    ):
        super().__init__(metric_groups)
        if adversarial not in ADVERSARIAL:
            raise ValueError(f"model.adversarial must be one of {ADVERSARIAL}, got {adversarial!r}")
        self.automatic_optimization = False
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.adversarial, self.adversarial_weight = adversarial, adversarial_weight
        self.adversarial_start_epoch = adversarial_start_epoch
        self.gradient_clip_val = gradient_clip_val

    # The discriminators compute in fp32, under autocast too: with weights of another dtype
    # the IPN's SN-PatchGAN fails on a dtype mismatch ("64", "*-true"), and the EPN's
    # PatchGAN under "*-true". One rule for every GAN model.
    PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if str(self.trainer.precision) not in self.PRECISIONS:
            raise ValueError(
                f"trainer.precision={self.trainer.precision}: {type(self).__name__} trains in "
                f"one of {', '.join(self.PRECISIONS)}"
            )

    def generate(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_loss(self, batch, fake: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, batch, fake, adversarial: bool) -> dict[str, torch.Tensor]:
        """Returns named terms; their sum (key 'loss') is what the generator minimises."""
        raise NotImplementedError

    @property
    def adversarial_active(self) -> bool:
        return self.adversarial_weight > 0 and self.current_epoch >= self.adversarial_start_epoch

    def _step(self, optimizer, loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Compute a loss with only `optimizer`'s parameters requiring grad, and step them."""
        self.toggle_optimizer(optimizer)
        loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip here, not before `optimizer.step()`: Lightning calls this hook after a 16-mixed
        loss scaler has unscaled the gradients, so the clip sees their true norm. Each
        parameter group (network) is clipped to its own norm: one optimizer holds all of the
        composite's stages, and a joint norm would shrink a small stage's gradient with the
        largest's."""
        if self.gradient_clip_val:
            for group in optimizer.param_groups:
                nn.utils.clip_grad_norm_(group["params"], self.gradient_clip_val)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # A second optimizer is absent where every discriminator is frozen: the generator
        # still learns against them, but no discriminator step is taken.
        optimizers = self.optimizers()
        g_opt, *d_opt = optimizers if isinstance(optimizers, list) else [optimizers]
        fake = self.generate(batch)
        adversarial = self.adversarial_active
        if adversarial and d_opt:
            detached = {name: value.detach() for name, value in fake.items()}
            d_loss = self._step(d_opt[0], lambda: self.discriminator_loss(batch, detached))
            self.log("train/d_loss", d_loss, prog_bar=True)
        terms: dict[str, torch.Tensor] = {}

        def generator_total() -> torch.Tensor:
            terms.update(self.generator_loss(batch, fake, adversarial))
            return terms["loss"]

        self._step(g_opt, generator_total)
        self.log_dict({f"train/g_{name}": value for name, value in terms.items() if name != "loss"})
        self.log("train/g_loss", terms["loss"], prog_bar=True)

    def configure_optimizers(self):
        return [
            self.g_optimizer(params=self.generator.parameters()),
            self.d_optimizer(params=self.discriminator.parameters()),
        ]
