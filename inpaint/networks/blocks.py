"""Building blocks shared by the networks: gated and spectral-normalised convolutions."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a conv in spectral normalisation when `enabled` (EdgeConnect, SN-PatchGAN)."""
    return spectral_norm(module) if enabled else module


class GatedConv2d(nn.Module):
    """DeepFill v2 gated convolution: one conv to 2C channels, `act(features) * sigmoid(gate)`.

    `activation=None` leaves the features linear (the output layer).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        activation: nn.Module | None = None,
        use_spectral_norm: bool = False,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        conv = nn.Conv2d(
            in_channels,
            2 * out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            padding_mode=padding_mode,
        )
        self.conv = maybe_spectral_norm(conv, use_spectral_norm)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        if self.activation is not None:
            features = self.activation(features)
        return features * torch.sigmoid(gate)


def require_divisible(network: str, image: torch.Tensor, factor: int) -> None:
    """A clear error for an image size the network's down- and upsampling cannot take."""
    height, width = image.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(
            f"{network} needs height and width divisible by {factor}, got {height}x{width}"
        )


def channels_last_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """`x` in channels-last layout on the CPU, where oneDNN's convolutions then skip the
    reorder to and from their blocked layout on every layer; other devices keep the layout.

    The MPN runs so (every layer keeps the layout at no cost). The EPN and IPN do not: there
    group norm's channels-last kernel is less accurate, and the gates' half-channel views
    make bf16 elementwise ops several times slower.
    """
    if x.device.type != "cpu":
        return x
    return x.contiguous(memory_format=torch.channels_last)
