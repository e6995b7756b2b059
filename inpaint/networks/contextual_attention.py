"""DeepFill's contextual attention: fill the hole by borrowing feature patches from outside it.

Matching happens at 1/`rate` of the feature resolution (cheap, and large patches carry more
context); the matched full-resolution background patches are pasted back with a transposed
convolution. Background patches that touch the hole are excluded, so the output copies no
content of the hole, unless no patch is intact at all (see `ContextualAttention`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a hole mask to `size`; when shrinking, a cell is a hole if any pixel in it is.

    Max-pooling (rather than DeepFill's nearest sampling) keeps thin strokes from slipping
    between the samples, so a patch judged intact really is intact at full resolution.
    """
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mask.shape[-2] >= size[0] and mask.shape[-1] >= size[1]:
        return F.adaptive_max_pool2d(mask, size)
    return F.interpolate(mask, size=size, mode="nearest")


class ContextualAttention(nn.Module):
    """Attention from every foreground location to the intact background patches.

    foreground, background: (B, C, H, W) features (the same tensor in DeepFill v2), H and W
    divisible by `rate`; mask: (B, 1, H', W') hole mask (1 = hole) at any resolution.
    Returns (B, C, H, W) in the background's dtype. Scores and softmax always run in float32;
    the paste, a plain weighted sum of patches and most of the FLOPs, in the background's
    dtype (bf16 under autocast: several times faster on the CPU).
    A background patch is excluded when any mask value in it exceeds `hole_threshold`
    (0: any trace of damage; raise it for soft predicted masks that are never exactly 0).
    Where no patch is intact (a sample whose hole reaches every patch), that sample attends
    over all patches, hole included: in the IPN these hold the coarse stage's paint, not the
    damage. (DeepFill's weights are all zero there, and so is its attention output.)
    """

    def __init__(
        self,
        patch_size: int = 3,
        rate: int = 2,
        softmax_scale: float = 10.0,
        fuse: bool = True,
        fuse_kernel: int = 3,
        hole_threshold: float = 0.0,
    ):
        super().__init__()
        if patch_size % 2 == 0 or fuse_kernel % 2 == 0:
            raise ValueError("patch_size and fuse_kernel must be odd")
        if patch_size < 3:
            raise ValueError(
                f"patch_size must be at least 3, got {patch_size}: the pasted patches are "
                "2 * rate wide, so a smaller match would let hole content through"
            )
        self.patch_size = patch_size
        self.rate = rate
        self.softmax_scale = softmax_scale
        self.fuse = fuse
        self.fuse_kernel = fuse_kernel
        self.hole_threshold = hole_threshold

    def forward(
        self, foreground: torch.Tensor, background: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        for name, x in (("foreground", foreground), ("background", background)):
            if x.shape[-2] % self.rate or x.shape[-1] % self.rate:
                raise ValueError(
                    f"ContextualAttention needs {name} height and width divisible by "
                    f"{self.rate}, got {x.shape[-2]}x{x.shape[-1]}"
                )
        with torch.autocast(device_type=foreground.device.type, enabled=False):
            attention = self._attention(foreground.float(), background.float(), mask.float())
            return self._paste(background, attention.to(background.dtype), foreground.shape[-2:])

    def _attention(self, fg: torch.Tensor, bg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Softmax weights (B, Lf, Lb) of the background patches for each foreground location."""
        rate, k = self.rate, self.patch_size
        batch = fg.shape[0]

        # Match at low resolution. Scores live on a grid of (foreground location i,
        # background location j) pairs: (B, hf, wf, hb, wb).
        fg_low, bg_low = fg[..., ::rate, ::rate], bg[..., ::rate, ::rate]
        (hf, wf), (hb, wb) = fg_low.shape[-2:], bg_low.shape[-2:]
        pixels = torch.bmm(fg_low.flatten(2).transpose(1, 2), bg_low.flatten(2))
        # The dot product of the k x k patches around i and j is the sum of the pixel dot
        # products at the k*k common offsets: k*k times fewer FLOPs than unfolding patches.
        scores = co_shifted_sum(pixels.view(batch, hf, wf, hb, wb), k, (1, 3))
        scores = co_shifted_sum(scores, k, (2, 4))

        # A background patch is usable only if no pixel of it lies in the hole.
        hole = resize_mask(mask, bg.shape[-2:])
        hole = F.max_pool2d(hole, rate, stride=rate)
        hole = F.max_pool2d(hole, k, stride=1, padding=k // 2)
        valid = (hole <= self.hole_threshold).view(batch, 1, 1, hb, wb)
        # A sample with no intact patch falls back to attending over every patch.
        valid = valid | ~valid.flatten(1).any(dim=1).view(batch, 1, 1, 1, 1)

        # Normalise the background patches (cosine similarity up to the foreground norm, as
        # in DeepFill), apply the softmax scale, and zero the excluded patches, in one
        # product per background patch.
        key_norms = F.avg_pool2d(bg_low.square().sum(1), k, 1, k // 2).mul(k * k).sqrt()
        factor = valid * self.softmax_scale / key_norms.clamp_min(1e-4).view(batch, 1, 1, hb, wb)
        scores = scores * factor

        if self.fuse:
            # DeepFill's fuse convolves the score matrix with an identity kernel, first in
            # row-major, then in column-major order: neighbouring pairs shifted together
            # reinforce each other, favouring coherent regions. We pad instead of wrapping
            # around row ends; excluded scores are already zero, so no hole content leaks.
            scores = co_shifted_sum(scores, self.fuse_kernel, (2, 4))
            scores = co_shifted_sum(scores, self.fuse_kernel, (1, 3))

        scores = scores.masked_fill(~valid, float("-inf"))
        return scores.view(batch, hf * wf, hb * wb).softmax(dim=-1)

    def _paste(
        self, bg: torch.Tensor, attention: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Paste raw full-resolution background patches of 2*rate pixels at stride rate, each
        foreground location (of a map of `size`) receiving its attention-weighted mix (a
        transposed convolution written as matmul + fold). The padding matches TF's "SAME", so
        patch j is centred on low-resolution location j.
        """
        rate = self.rate
        height, width = size
        pad = (rate // 2, rate - rate // 2)
        raw = F.unfold(F.pad(bg, pad + pad), 2 * rate, stride=rate)  # (B, C*4r^2, Lb)
        pasted = torch.bmm(raw, attention.transpose(1, 2))  # (B, C*4r^2, Lf)
        padded_size = (height + rate, width + rate)
        out = F.fold(pasted, padded_size, 2 * rate, stride=rate)
        # Average the overlaps: 4 patches cover each pixel (DeepFill's "/ 4"), fewer at the
        # border, where DeepFill's constant 4 would darken the frame.
        ones = pasted.new_ones(1, 4 * rate * rate, attention.shape[1])
        coverage = F.fold(ones, padded_size, 2 * rate, stride=rate)
        crop = (..., slice(pad[0], pad[0] + height), slice(pad[0], pad[0] + width))
        return out[crop] / coverage[crop]


def co_shifted_sum(pairs: torch.Tensor, k: int, dims: tuple[int, int]) -> torch.Tensor:
    """Sum of `pairs` with both locations shifted together by d = -k//2 .. k//2 along `dims`.

    pairs: (B, hf, wf, hb, wb), a quantity per (foreground, background) location pair;
    dims = (1, 3) shifts along y, (2, 4) along x. Out-of-range pairs count as zero.
    """
    a, b = dims
    out = pairs.clone()
    for d in range(1, k // 2 + 1):
        length_a, length_b = pairs.shape[a] - d, pairs.shape[b] - d
        low = pairs.narrow(a, 0, length_a).narrow(b, 0, length_b)
        high = pairs.narrow(a, d, length_a).narrow(b, d, length_b)
        out.narrow(a, 0, length_a).narrow(b, 0, length_b).add_(high)  # pair (i + d, j + d)
        out.narrow(a, d, length_a).narrow(b, d, length_b).add_(low)  # pair (i - d, j - d)
    return out
