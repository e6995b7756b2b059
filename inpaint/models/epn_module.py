"""Trains the edge prediction network (EdgeConnect's edge model) as a GAN."""

from __future__ import annotations

import torch

from inpaint.data.edges import to_gray
from inpaint.models.gan import GANModule, judge_together
from inpaint.models.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from inpaint.models.metrics import EdgeMetrics
from inpaint.visual import edge_overlay


def epn_input(
    damaged: torch.Tensor, damaged_edge: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Generator input: grey damaged image, its edges outside the hole, and the mask."""
    return torch.cat([to_gray(damaged), damaged_edge, mask], dim=1)


def epn_judge_input(edges: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
    """Discriminator input: an edge map beside the grey image it belongs to."""
    return torch.cat([edges, gray], dim=1)


def merge_edges(predicted: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Predicted edges inside the hole, known (Canny) edges outside it."""
    return predicted * mask + known * (1 - mask)


class EPNModule(GANModule):
    """Generator: edges from (grey damaged, known edges, mask). Discriminator: PatchGAN on
    (edges, grey image). Generator loss: adversarial + `feature_matching_weight` x feature
    matching. Trained alone, it gets the true mask; batches need `edge`, `damaged_edge`, `gray`.
    """

    needs_edges = True

    progress_metrics = ("val/edge_f1", "val/edge_recall", "val/edge_psnr")

    def __init__(self, feature_matching_weight: float = 10.0, **gan):
        super().__init__(metric_groups={"edge": EdgeMetrics, "edge_input": EdgeMetrics}, **gan)
        self.save_hyperparameters(
            logger=False, ignore=["generator", "discriminator", "g_optimizer", "d_optimizer"]
        )
        self.feature_matching_weight = feature_matching_weight

    def forward(self, damaged, damaged_edge, mask) -> torch.Tensor:
        """Full edge map: predicted inside the hole, the known edges outside."""
        predicted = self.generator(epn_input(damaged, damaged_edge, mask))
        return merge_edges(predicted, damaged_edge, mask)

    def generate(self, batch):
        edges = self.generator(epn_input(batch["damaged"], batch["damaged_edge"], batch["mask"]))
        return {"edges": edges}

    def discriminator_loss(self, batch, fake):
        (real_logits, _), (fake_logits, _) = judge_together(
            self.discriminator,
            epn_judge_input(batch["edge"], batch["gray"]),
            epn_judge_input(fake["edges"], batch["gray"]),
        )
        return discriminator_loss(self.adversarial, real_logits, fake_logits)

    def generator_loss(self, batch, fake, adversarial):
        fake_logits, fake_features = self.discriminator(
            epn_judge_input(fake["edges"], batch["gray"])
        )
        _, real_features = self.discriminator(epn_judge_input(batch["edge"], batch["gray"]))
        terms = {"feature_matching": feature_matching_loss(real_features, fake_features)}
        loss = self.feature_matching_weight * terms["feature_matching"]
        if adversarial:
            terms["adversarial"] = generator_adversarial_loss(self.adversarial, fake_logits)
            loss = loss + self.adversarial_weight * terms["adversarial"]
        terms["loss"] = loss
        return terms

    def evaluate(self, stage, batch):
        edges = self(batch["damaged"], batch["damaged_edge"], batch["mask"])
        self.metrics[stage]["edge"].update(edges, batch["edge"], batch["mask"])
        self.metrics[stage]["edge_input"].update(
            batch["damaged_edge"], batch["edge"], batch["mask"]
        )
        return {
            "damaged": batch["damaged"],
            "mask": batch["mask"],
            "canny": batch["edge"],
            "edges": edge_overlay(batch["edge"], edges, batch["mask"]),
        }
