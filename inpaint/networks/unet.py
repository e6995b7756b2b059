"""The CNN U-Net of the CIFAR-10 inpainting paper: 19 convolutions, concatenated skips."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from inpaint.networks.blocks import require_divisible


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by ReLU (one level of the paper's U-Net)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder of `widths` levels with 2x2 max pooling, a bottleneck, and a mirrored decoder.

    Decoder levels upsample with a 2x2 transposed convolution (+ ReLU), concatenate the
    encoder features of the same size and apply two 3x3 convolutions. A final 3x3
    convolution and a sigmoid give the image in [0, 1]. Height and width must be multiples
    of 2 ** len(widths).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128, 256),
        bottleneck: int = 512,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.factor = 2 ** len(widths)
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.encoders.append(double_conv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(channels, bottleneck)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        channels = bottleneck
        for width in reversed(widths):
            self.upsamplers.append(
                nn.Sequential(
                    nn.ConvTranspose2d(channels, width, 2, stride=2), nn.ReLU(inplace=True)
                )
            )
            self.decoders.append(double_conv(2 * width, width))
            channels = width
        self.head = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_divisible("UNet", x, self.factor)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upsample, decoder, skip in zip(
            self.upsamplers, self.decoders, reversed(skips), strict=True
        ):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return torch.sigmoid(self.head(x))
