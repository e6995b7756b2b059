"""MPN, the mask prediction network of blind inpainting: where is this photo damaged?"""

from __future__ import annotations

import torch
from torch import nn

from inpaint.networks.blocks import channels_last_on_cpu, require_divisible


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (no bias: batch norm cancels it), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, then ReLU (the classic ResNet basic block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(channels, channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


def residual_stack(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))


class MaskPredictionNetwork(nn.Module):
    """U-Net of residual blocks that predicts, per pixel, how damaged the input image is.

    Encoder: a stem conv at full resolution, then `levels` stages of a stride-2 conv
    (channels doubling up to `base * 8`) and residual blocks. Decoder: per stage nearest x2
    upsampling + conv, concatenation with the encoder features of the same size (the skips
    carry the fine detail that a damage boundary needs), conv and residual blocks. A 1x1
    conv gives one channel.

    Returns logits (B, 1, H, W), not probabilities: the loss applies BCE-with-logits in
    float32, which is stable where sigmoid + BCE is not; take `sigmoid` for the mask.
    Height and width must be multiples of 2 ** levels.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base: int = 32,
        levels: int = 4,
        blocks_per_level: int = 1,
    ):
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        self.factor = 2**levels
        widths = [min(base * 2**level, base * 8) for level in range(levels + 1)]

        self.stem = nn.Sequential(
            conv_bn_relu(in_channels, widths[0]), residual_stack(widths[0], blocks_per_level)
        )
        self.down = nn.ModuleList(
            nn.Sequential(conv_bn_relu(cin, cout, stride=2), residual_stack(cout, blocks_per_level))
            for cin, cout in zip(widths[:-1], widths[1:], strict=True)
        )
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv_bn_relu(cin, cout))
            for cin, cout in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.merge = nn.ModuleList(
            nn.Sequential(conv_bn_relu(2 * width, width), residual_stack(width, blocks_per_level))
            for width in widths[-2::-1]
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_divisible("MaskPredictionNetwork", x, self.factor)
        x = self.stem(channels_last_on_cpu(x))
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)
