"""The damage model: damaged = (1 - m) * image + m * fill."""

from __future__ import annotations

import numpy as np

NOISE_STD = 0.25


def make_fill(
    kind: str,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    other: np.ndarray | None = None,
) -> np.ndarray:
    """What fills the hole: zeros, ones, a random colour, Gaussian noise, or another image."""
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    if kind == "ones":
        return np.ones(shape, np.float32)
    if kind == "colour":
        return np.broadcast_to(rng.random(3, dtype=np.float32), shape)
    if kind == "noise":
        return np.clip(rng.normal(0.5, NOISE_STD, shape), 0, 1).astype(np.float32)
    if kind == "image":
        if other is None or other.shape != shape:
            raise ValueError(f"fill 'image' needs another image of shape {shape}")
        return other
    raise ValueError(f"unknown fill {kind!r}; expected zeros, ones, colour, noise or image")


def other_index(own: int, count: int, rng: np.random.Generator) -> int:
    """One of `count` (at least 2) items other than `own`, uniformly: the fill `image` comes
    from another photo, as a crop of the photo itself could leave the hole undamaged."""
    drawn = int(rng.integers(0, count - 1))
    return drawn + (drawn >= own)


def damage(image: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Blend `fill` into `image` (H, W, 3) by the mask (H, W) in [0, 1]."""
    weight = mask[:, :, None]
    return ((1.0 - weight) * image + weight * fill).astype(np.float32)
