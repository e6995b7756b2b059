"""Blind inpainting end to end: MPN -> EPN -> IPN on a damaged image with no mask given.

The predicted (continuous) mask feeds the EPN; its edges inside the predicted hole are
merged with Canny edges outside it; the IPN paints; the result keeps the input where the
predicted mask says the pixel is intact (a soft blend by the mask).

Modes:
- `joint_epn_mpn`: MPN and EPN trained together, EPN fed the predicted mask (Table 2).
- `joint`: all three trained end to end, with a loss weight per stage.
- `staged`: every stage loaded from its own checkpoint (e.g. the Table 1 runs); any
  subset frozen with `freeze`, the rest fine-tuned together.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.nn import functional as F

from inpaint.data.edges import EdgeDetector, to_gray
from inpaint.models.epn_module import epn_judge_input, merge_edges
from inpaint.models.gan import GANModule, judge_together
from inpaint.models.ipn_module import ipn_judge_input
from inpaint.models.losses import (
    ADVERSARIAL,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mask_loss,
)
from inpaint.models.metrics import EdgeMetrics, ImageMetrics, MaskMetrics
from inpaint.torch_files import load_torch_file, state_dict_mismatch
from inpaint.visual import edge_overlay

MODES = {
    "joint_epn_mpn": ("mpn", "epn"),
    "joint": ("mpn", "epn", "ipn"),
    "staged": ("mpn", "epn", "ipn"),
}
# Which LightningModule trains each stage alone, and where its weights sit in that checkpoint.
STAGE_MODULES = {"mpn": "MPNModule", "epn": "EPNModule", "ipn": "IPNModule"}
STAGE_KEYS = {
    "mpn": {"net.": "generator"},
    "epn": {"generator.": "generator", "discriminator.": "discriminator"},
}
STAGE_KEYS["ipn"] = STAGE_KEYS["epn"]


def freeze_list(freeze) -> list[str]:
    """`model.freeze` as a list: `mpn` on the command line is one stage, null none."""
    if freeze is None:
        return []
    return [freeze] if isinstance(freeze, str) else list(freeze)


class BlindInpainter(GANModule):
    """The three networks chained, trained in one of `MODES` (see the module docstring).

    `optimizer_groups` / `discriminator_groups` give each stage's Adam settings (lr, betas).
    `loss_weights` weigh the stages' losses (keys mask, edge, image).
    """

    needs_edges = True

    def __init__(
        self,
        mpn: nn.Module,
        epn_generator: nn.Module,
        epn_discriminator: nn.Module,
        edges: EdgeDetector,
        ipn_generator: nn.Module | None = None,
        ipn_discriminator: nn.Module | None = None,
        mode: str = "joint",
        optimizer_groups: dict | None = None,
        discriminator_groups: dict | None = None,
        loss_weights: dict | None = None,
        stage_checkpoints: dict | None = None,
        freeze: list[str] | tuple[str, ...] = (),
        feature_matching_weight: float = 10.0,
        l1_coarse_weight: float = 1.0,
        l1_refined_weight: float = 1.0,
        edge_adversarial: str = "nsgan",
        image_adversarial: str = "hinge",
        **gan,
    ):
        if mode not in MODES:
            raise ValueError(f"model.mode must be one of {sorted(MODES)}, got {mode!r}")
        for key, kind in (
            ("edge_adversarial", edge_adversarial),
            ("image_adversarial", image_adversarial),
        ):
            if kind not in ADVERSARIAL:
                raise ValueError(f"model.{key} must be one of {ADVERSARIAL}, got {kind!r}")
        stages = MODES[mode]
        if "ipn" in stages and (ipn_generator is None or ipn_discriminator is None):
            raise ValueError(
                f"model.mode={mode} trains the IPN: give ipn_generator and ipn_discriminator"
            )
        generators = {"mpn": mpn, "epn": epn_generator, "ipn": ipn_generator}
        discriminators = {"epn": epn_discriminator, "ipn": ipn_discriminator}
        super().__init__(
            generator=nn.ModuleDict({s: generators[s] for s in stages}),
            discriminator=nn.ModuleDict({s: discriminators[s] for s in stages if s != "mpn"}),
            g_optimizer=None,
            d_optimizer=None,
            metric_groups=self._metric_groups(stages),
            adversarial=edge_adversarial,
            **gan,
        )
        self.save_hyperparameters(
            logger=False,
            ignore=[
                "mpn",
                "epn_generator",
                "epn_discriminator",
                "ipn_generator",
                "ipn_discriminator",
                "edges",
            ],
        )
        self.mode, self.stages, self.edges = mode, stages, edges
        self.image_adversarial = image_adversarial
        self.loss_weights = {"mask": 1.0, "edge": 1.0, "image": 1.0, **(loss_weights or {})}
        self.optimizer_groups = optimizer_groups or {}
        self.discriminator_groups = discriminator_groups or {}
        self.feature_matching_weight = feature_matching_weight
        self.l1_coarse_weight, self.l1_refined_weight = l1_coarse_weight, l1_refined_weight
        checkpoints = {k: v for k, v in (stage_checkpoints or {}).items() if v}
        if extra := sorted(set(checkpoints) - set(stages)):
            raise ValueError(
                f"model.stage_checkpoints.{extra[0]} is given, but model.mode={mode} has no "
                f"{extra[0]} stage (its stages: {', '.join(stages)})"
            )
        if mode == "staged" and set(checkpoints) != set(stages):
            missing = sorted(set(stages) - set(checkpoints))
            raise ValueError(
                "model.mode=staged loads every stage: "
                f"give model.stage_checkpoints.{missing[0]}=PATH"
            )
        for stage, path in checkpoints.items():
            self.load_stage(stage, path)
        self.loaded_stages = tuple(checkpoints)
        freeze = freeze_list(freeze)
        unknown = set(freeze) - set(stages)
        if unknown:
            raise ValueError(f"model.freeze names stages not in mode {mode}: {sorted(unknown)}")
        self.frozen = tuple(freeze)
        if set(self.frozen) == set(stages):
            raise ValueError("model.freeze leaves nothing to train; freeze fewer stages")
        for module in self._frozen_modules():
            module.requires_grad_(False)
            module.eval()  # Lightning keeps each submodule's mode through fit

    def refuse_untrained_frozen_stages(self) -> None:
        """Training from scratch, a frozen stage must come from its own checkpoint: it would
        otherwise stay at its random initialisation."""
        if untrained := [s for s in self.frozen if s not in self.loaded_stages]:
            raise ValueError(
                f"model.freeze={list(self.frozen)} freezes {', '.join(untrained)}, which no "
                f"model.stage_checkpoints loads: give model.stage_checkpoints."
                f"{untrained[0]}=PATH, or leave it out of model.freeze"
            )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resumed training restores the optimisers, which hold a parameter group per trained
        stage: a checkpoint trained with other stages frozen cannot go on (testing it can)."""
        trained = freeze_list(checkpoint.get("hyper_parameters", {}).get("freeze"))
        fitting = self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        if fitting and set(trained) != set(self.frozen):
            raise ValueError(
                f"the checkpoint was trained with model.freeze={trained}, this run has "
                f"model.freeze={list(self.frozen)}: resume it with model.freeze={trained}"
            )

    def _frozen_modules(self) -> list[nn.Module]:
        networks = (self.generator, self.discriminator)
        return [net[stage] for stage in self.frozen for net in networks if stage in net]

    def train(self, mode: bool = True):
        """Frozen stages stay in eval mode, so that their batch-norm statistics and
        spectral-norm estimates do not move either."""
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    @staticmethod
    def _metric_groups(stages) -> dict[str, type]:
        groups = {"mask": MaskMetrics, "mask_empty": MaskMetrics, "mask_full": MaskMetrics}
        groups |= {"edge": EdgeMetrics, "edge_input": EdgeMetrics}
        if "ipn" in stages:
            groups |= {"image": ImageMetrics, "image_input": ImageMetrics}
        return groups

    def load_stage(self, stage: str, path: str | Path) -> None:
        """Load one stage's weights from the checkpoint of its Table 1 run."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint for stage {stage} not found: {path}")
        checkpoint = load_torch_file(path, f"a checkpoint of the {stage} stage")
        target = str(checkpoint.get("hyper_parameters", {}).get("config", {}).get("_target_", ""))
        expected = STAGE_MODULES[stage]
        if not target.endswith(expected):
            raise ValueError(
                f"{path} is a checkpoint of {target or 'an unknown model'}, not of {expected}: "
                f"it cannot be loaded as the {stage} stage"
            )
        for prefix, part in STAGE_KEYS[stage].items():
            module = self.generator[stage] if part == "generator" else self.discriminator[stage]
            weights = {
                k.removeprefix(prefix): v
                for k, v in checkpoint["state_dict"].items()
                if k.startswith(prefix)
            }
            try:
                module.load_state_dict(weights)
            except RuntimeError as error:
                raise ValueError(
                    f"{path}: the {stage} {part} weights do not fit this network "
                    f"(another width or variant?) {state_dict_mismatch(error)}"
                ) from None

    # -- the chain --------------------------------------------------------------------
    def run_chain(
        self, damaged: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The stages in order; a given `mask` replaces the MPN's prediction (no `mask_logits`)."""
        result = {}
        if mask is None:
            result["mask_logits"] = self.generator["mpn"](damaged)
            mask = torch.sigmoid(result["mask_logits"].float())
        gray = to_gray(damaged)
        with torch.no_grad():
            known = self.edges(gray, mask).to(gray.dtype)
        predicted = self.generator["epn"](torch.cat([gray, known, mask], dim=1))
        result |= {
            "mask": mask,
            "known_edges": known,
            "predicted_edges": predicted,
            "edges": merge_edges(predicted, known, mask),
        }
        if "ipn" in self.generator:
            coarse, refined = self.generator["ipn"](damaged, mask, result["edges"])
            result |= {
                "coarse": coarse,
                "refined": refined,
                "output": mask * refined + (1 - mask) * damaged,
            }
        return result

    def forward(self, damaged: torch.Tensor) -> torch.Tensor:
        """The restored image (with an IPN), else the full edge map."""
        result = self.run_chain(damaged)
        return result.get("output", result["edges"])

    # -- training ---------------------------------------------------------------------
    def generate(self, batch):
        return self.run_chain(batch["damaged"])

    def _judge_edges(self, edges, gray):
        return self.discriminator["epn"](epn_judge_input(edges, gray))

    def _judge_image(self, image, mask, edges):
        return self.discriminator["ipn"](ipn_judge_input(image, mask, edges))

    def discriminator_loss(self, batch, fake):
        (real, _), (generated, _) = judge_together(
            self.discriminator["epn"],
            epn_judge_input(batch["edge"], batch["gray"]),
            epn_judge_input(fake["predicted_edges"], batch["gray"]),
        )
        loss = self.loss_weights["edge"] * discriminator_loss(self.adversarial, real, generated)
        if "ipn" in self.stages:
            real, generated = judge_together(
                self.discriminator["ipn"],
                ipn_judge_input(batch["image"], fake["mask"], fake["edges"]),
                ipn_judge_input(fake["output"], fake["mask"], fake["edges"]),
            )
            loss = loss + self.loss_weights["image"] * discriminator_loss(
                self.image_adversarial, real, generated
            )
        return loss

    def generator_loss(self, batch, fake, adversarial):
        weights = self.loss_weights
        terms = {"mask": mask_loss(fake["mask_logits"], batch["mask"])}
        fake_logits, fake_features = self._judge_edges(fake["predicted_edges"], batch["gray"])
        _, real_features = self._judge_edges(batch["edge"], batch["gray"])
        terms["edge_feature_matching"] = feature_matching_loss(real_features, fake_features)
        edge = self.feature_matching_weight * terms["edge_feature_matching"]
        if adversarial:
            terms["edge_adversarial"] = generator_adversarial_loss(self.adversarial, fake_logits)
            edge = edge + self.adversarial_weight * terms["edge_adversarial"]
        loss = weights["mask"] * terms["mask"] + weights["edge"] * edge
        if "ipn" in self.stages:
            image = batch["image"]
            terms["l1_coarse"] = F.l1_loss(fake["coarse"].float(), image)
            terms["l1_refined"] = F.l1_loss(fake["refined"].float(), image)
            painted = (
                self.l1_coarse_weight * terms["l1_coarse"]
                + self.l1_refined_weight * terms["l1_refined"]
            )
            if adversarial:
                # The mask and edges are the verdict's condition: the chain is judged by
                # its painting (through which they still learn), not by changing them.
                condition = fake["mask"].detach(), fake["edges"].detach()
                judged = self._judge_image(fake["output"], *condition)
                terms["image_adversarial"] = generator_adversarial_loss(
                    self.image_adversarial, judged
                )
                painted = painted + self.adversarial_weight * terms["image_adversarial"]
            loss = loss + weights["image"] * painted
        terms["loss"] = loss
        return terms

    def _groups(self, settings: dict, modules: nn.ModuleDict) -> list[dict]:
        return [
            {"params": list(modules[stage].parameters()), **settings.get(stage, {})}
            for stage in modules
            if stage not in self.frozen
        ]

    def configure_optimizers(self):
        """Adam for the trainable generators and, unless every stage with a discriminator
        is frozen, one for their discriminators."""
        optimizers = [torch.optim.Adam(self._groups(self.optimizer_groups, self.generator))]
        discriminators = self._groups(self.discriminator_groups, self.discriminator)
        if discriminators:
            optimizers.append(torch.optim.Adam(discriminators))
        return optimizers

    # -- evaluation -------------------------------------------------------------------
    def evaluate(self, stage, batch):
        fake = self.run_chain(batch["damaged"])
        mask, metrics = batch["mask"], self.metrics[stage]
        metrics["mask"].update(fake["mask"], mask)
        metrics["mask_empty"].update(torch.zeros_like(mask), mask)
        metrics["mask_full"].update(torch.ones_like(mask), mask)
        metrics["edge"].update(fake["edges"], batch["edge"], mask)
        metrics["edge_input"].update(batch["damaged_edge"], batch["edge"], mask)
        columns = {
            "damaged": batch["damaged"],
            "mask": mask,
            "predicted_mask": fake["mask"],
            "canny": batch["edge"],
            "edges": edge_overlay(batch["edge"], fake["predicted_edges"], fake["mask"]),
        }
        if "ipn" in self.stages:
            metrics["image"].update(fake["output"], batch["image"], mask)
            metrics["image_input"].update(batch["damaged"], batch["image"], mask)
            columns |= {"output": fake["output"], "image": batch["image"]}
        return columns
