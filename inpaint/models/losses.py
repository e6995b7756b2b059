"""Losses, all computed in float32 whatever the autocast precision."""

from __future__ import annotations

import torch
from torch.nn import functional as F

ADVERSARIAL = ("nsgan", "lsgan", "hinge")


def _fp32(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.float() for t in tensors]


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Loss of a discriminator that outputs logits (nsgan, lsgan) or scores (hinge)."""
    real, fake = _fp32(real, fake)
    if kind == "nsgan":
        return (
            F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        ) / 2
    if kind == "lsgan":
        return (
            F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
        ) / 2
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, got {kind!r}")


def generator_adversarial_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's side: make the discriminator call its output real."""
    (fake,) = _fp32(fake)
    if kind == "nsgan":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":
        return F.mse_loss(fake, torch.ones_like(fake))
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"adversarial loss must be one of {ADVERSARIAL}, got {kind!r}")


def feature_matching_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """L1 between the discriminator's feature maps of real and generated inputs (EdgeConnect)."""
    return sum(F.l1_loss(f.float(), r.detach().float()) for r, f in zip(real, fake, strict=True))


def class_balanced_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE on logits with positives and negatives weighted by each other's frequency (VCNet).

    Holes are usually a small part of the image; without balancing the network learns to
    predict "intact" everywhere.
    """
    logits, target = _fp32(logits, target)
    positive = target.mean().clamp(1e-3, 1 - 1e-3)
    weight = torch.where(target >= 0.5, 1 - positive, positive) * 2
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def is_binary(mask: torch.Tensor) -> torch.Tensor:
    """Per sample: does the mask hold only 0 and 1?"""
    return ((mask == 0) | (mask == 1)).flatten(1).all(1)


def mask_loss(logits: torch.Tensor, target: torch.Tensor, l1_weight: float = 1.0) -> torch.Tensor:
    """Class-balanced BCE for binary masks, L1 on probabilities for continuous (grey) masks,
    each weighted by its share of the batch's samples: a sample counts alike whatever else
    its batch holds (a mean of the two means gave one grey mask among 15 binary ones the
    weight of 15)."""
    logits, target = _fp32(logits, target)
    binary = is_binary(target)
    share = binary.float().mean()
    loss = logits.new_zeros(())
    if binary.any():
        loss = loss + share * class_balanced_bce(logits[binary], target[binary])
    if (~binary).any():
        grey = F.l1_loss(torch.sigmoid(logits[~binary]), target[~binary])
        loss = loss + (1 - share) * l1_weight * grey
    return loss


def gram(features: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = features.shape
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def perceptual_and_style(
    real: list[torch.Tensor], fake: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perceptual (L1 of VGG features) and style (L1 of Gram matrices) losses, after
    EdgeConnect's; unlike its, both on the same layers and the whole image (its style loss
    compares the hole only, on other layers), of ImageNet-normalised inputs.

    Outside autocast: there the Gram matrices' products would run in half precision, which
    overflows to inf in fp16 at 256 px.
    """
    with torch.autocast(real[0].device.type, enabled=False):
        pairs = [(r.float(), f.float()) for r, f in zip(real, fake, strict=True)]
        perceptual = sum(F.l1_loss(f, r) for r, f in pairs)
        style = sum(F.l1_loss(gram(f), gram(r)) for r, f in pairs)
    return perceptual, style
