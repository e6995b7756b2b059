"""Trains the inpainting network (DeepFill v2 with edges) as a GAN with a hinge loss."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from inpaint.models.gan import GANModule, judge_together
from inpaint.models.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    perceptual_and_style,
)
from inpaint.models.metrics import ImageMetrics
from inpaint.networks.vgg import VGG19Features


def composite(output: torch.Tensor, damaged: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the pixels the mask calls intact (m == 0) and take every other one from the output."""
    return torch.where(mask > 0, output, damaged)


def ipn_judge_input(image: torch.Tensor, mask: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Discriminator input: an image beside its hole mask and edge map."""
    return torch.cat([image, mask, edges], dim=1)


class IPNModule(GANModule):
    """Generator: (coarse, refined) from (damaged, mask, edges). Discriminator: SN-PatchGAN on
    (composited image, mask, edges). Loss: L1 on coarse and refined outputs, hinge
    adversarial, and optionally perceptual + style losses from a local VGG19 weights file.
    Trained alone it gets the true mask and the true (Canny of the clean image) edges.
    """

    needs_edges = True

    def __init__(
        self,
        l1_coarse_weight: float = 1.0,
        l1_refined_weight: float = 1.0,
        vgg_weights: str | None = None,
        perceptual_weight: float = 0.1,
        style_weight: float = 250.0,
        adversarial: str = "hinge",
        **gan,
    ):
        super().__init__(
            metric_groups={"image": ImageMetrics, "image_input": ImageMetrics},
            adversarial=adversarial,
            **gan,
        )
        self.save_hyperparameters(
            logger=False, ignore=["generator", "discriminator", "g_optimizer", "d_optimizer"]
        )
        self.l1_coarse_weight, self.l1_refined_weight = l1_coarse_weight, l1_refined_weight
        self.perceptual_weight, self.style_weight = perceptual_weight, style_weight
        self.vgg = VGG19Features(vgg_weights) if vgg_weights else None

    def forward(self, damaged, mask, edge) -> torch.Tensor:
        """The composited result: refined output in the hole, the input elsewhere."""
        _, refined = self.generator(damaged, mask, edge)
        return composite(refined, damaged, mask)

    def generate(self, batch):
        coarse, refined = self.generator(batch["damaged"], batch["mask"], batch["edge"])
        return {"coarse": coarse, "refined": refined}

    def discriminator_loss(self, batch, fake):
        completed = composite(fake["refined"], batch["damaged"], batch["mask"])
        real, generated = judge_together(
            self.discriminator,
            ipn_judge_input(batch["image"], batch["mask"], batch["edge"]),
            ipn_judge_input(completed, batch["mask"], batch["edge"]),
        )
        return discriminator_loss(self.adversarial, real, generated)

    def generator_loss(self, batch, fake, adversarial):
        image = batch["image"]
        terms = {
            "l1_coarse": F.l1_loss(fake["coarse"].float(), image),
            "l1_refined": F.l1_loss(fake["refined"].float(), image),
        }
        loss = (
            self.l1_coarse_weight * terms["l1_coarse"]
            + self.l1_refined_weight * terms["l1_refined"]
        )
        if self.vgg is not None:
            terms["perceptual"], terms["style"] = perceptual_and_style(
                self.vgg(image), self.vgg(fake["refined"])
            )
            loss = (
                loss
                + self.perceptual_weight * terms["perceptual"]
                + self.style_weight * terms["style"]
            )
        if adversarial:
            completed = composite(fake["refined"], batch["damaged"], batch["mask"])
            terms["adversarial"] = generator_adversarial_loss(
                self.adversarial,
                self.discriminator(ipn_judge_input(completed, batch["mask"], batch["edge"])),
            )
            loss = loss + self.adversarial_weight * terms["adversarial"]
        terms["loss"] = loss
        return terms

    def evaluate(self, stage, batch):
        output = self(batch["damaged"], batch["mask"], batch["edge"])
        self.metrics[stage]["image"].update(output, batch["image"], batch["mask"])
        self.metrics[stage]["image_input"].update(batch["damaged"], batch["image"], batch["mask"])
        return {
            "damaged": batch["damaged"],
            "mask": batch["mask"],
            "edge": batch["edge"],
            "output": output,
            "image": batch["image"],
        }
