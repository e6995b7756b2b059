"""EPN, the edge prediction network (after EdgeConnect): edge generator and PatchGAN critic.

The generator completes the Canny edge map inside the hole; the discriminator judges
edge maps (with the grey image) patch by patch and exposes its feature maps so the
generator can be trained with feature matching.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from inpaint.networks.blocks import GatedConv2d, maybe_spectral_norm, require_divisible

CONV_TYPES = ("plain", "gated")


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm without affine parameters or running statistics: train and eval
    normalise the same way.

    Computed as group norm with one channel per group, the same normalisation: PyTorch's
    group-norm kernel is as accurate and about five times faster on the CPU (instance norm
    runs batch norm's training path on a reshaped copy). Its channels-last kernel is not as
    accurate (a plain sum of squares), so the EPN runs in NCHW.
    """

    def __init__(self, channels: int):
        super().__init__(channels, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, eps=self.eps)


class RowSumConv2d(nn.Conv2d):
    """A stride-1 unpadded convolution to few channels (EPN's 7x7 output layer), computed as
    a (1, k) convolution to `out_channels * k` channels whose k row-shifted maps are summed.

    The same weights and result up to float rounding: oneDNN runs a convolution to one
    channel three to five times slower than this. The sum runs, and the output comes, in
    float32.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_channels, in_channels, rows, width = self.weight.shape
        row_weight = self.weight.transpose(1, 2).reshape(out_channels * rows, in_channels, 1, width)
        maps = F.conv2d(x, row_weight).float().unflatten(1, (out_channels, rows))
        height = maps.shape[-2] - rows + 1
        out = maps[:, :, 0, :height] + self.bias.view(1, -1, 1, 1)
        for row in range(1, rows):
            out += maps[:, :, row, row : row + height]
        return out


class _ConvFactory:
    """Builds the generator's convolutions, plain or gated, with or without spectral norm.

    Every conv built here is followed by instance norm, which removes any per-channel
    constant: plain convs therefore carry no bias (it would get no gradient). Gated convs
    are built with `activation=None`; the caller adds IN + ReLU after them exactly as after
    a plain conv, so both variants share one layout.
    """

    def __init__(self, conv: str, use_spectral_norm: bool):
        if conv not in CONV_TYPES:
            raise ValueError(f"conv must be one of {CONV_TYPES}, got {conv!r}")
        self.gated = conv == "gated"
        self.sn = use_spectral_norm

    def reflect(self, cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Module:
        """A stride-1 conv with reflection padding that keeps the spatial size."""
        pad = dilation * (kernel - 1) // 2
        if self.gated:
            return GatedConv2d(
                cin,
                cout,
                kernel,
                dilation=dilation,
                use_spectral_norm=self.sn,
                padding_mode="reflect",
            )
        conv = nn.Conv2d(cin, cout, kernel, dilation=dilation, bias=False)
        return nn.Sequential(nn.ReflectionPad2d(pad), maybe_spectral_norm(conv, self.sn))

    def down(self, cin: int, cout: int) -> nn.Module:
        """Halve the resolution: 4x4 conv, stride 2, padding 1."""
        if self.gated:
            return GatedConv2d(cin, cout, 4, stride=2, use_spectral_norm=self.sn)
        conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False)
        return maybe_spectral_norm(conv, self.sn)

    def up(self, cin: int, cout: int) -> nn.Module:
        """Double the resolution: transposed 4x4 conv, or nearest x2 + gated 3x3 (DeepFill)."""
        if self.gated:
            return nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                GatedConv2d(cin, cout, 3, use_spectral_norm=self.sn),
            )
        conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        return maybe_spectral_norm(conv, self.sn)


class ResidualBlock(nn.Module):
    """EdgeConnect residual block: dilated 3x3 conv, IN, ReLU, 3x3 conv, IN, plus the input.

    No activation after the sum, as in EdgeConnect. The dilation widens the receptive field
    at 1/4 resolution so edges can be continued across large holes.
    """

    def __init__(self, channels: int, factory: _ConvFactory, dilation: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            factory.reflect(channels, channels, 3, dilation=dilation),
            InstanceNorm(channels),
            nn.ReLU(inplace=True),
            factory.reflect(channels, channels, 3),
            InstanceNorm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class EdgeGenerator(nn.Module):
    """EdgeConnect edge generator: encoder (/4), dilated residual blocks, decoder (x4).

    Input: cat(grey damaged image, Canny edges outside the hole, mask), (B, 3, H, W).
    Output: edge probabilities (B, 1, H, W) in [0, 1]; the sigmoid is taken in float32 so
    the result stays well defined under mixed precision. H and W must be multiples of 4.

    `conv="gated"` swaps every plain conv for a DeepFill v2 gated conv (and the transposed
    convs for nearest x2 + gated 3x3); the output conv stays plain in both variants.
    Spectral norm, when enabled, is on every conv but the output conv.
    """

    factor = 4

    def __init__(
        self,
        in_channels: int = 3,
        base: int = 64,
        residual_blocks: int = 8,
        conv: str = "plain",
        use_spectral_norm: bool = True,
    ):
        super().__init__()
        make = _ConvFactory(conv, use_spectral_norm)
        # Reflection padding must be smaller than the padded side: the dilated residual
        # convs pad 1/4-resolution maps by 2, so those need at least 3 pixels.
        self.min_size = 3 * self.factor if residual_blocks else self.factor
        c1, c2, c4 = base, 2 * base, 4 * base
        self.encoder = nn.Sequential(
            make.reflect(in_channels, c1, 7),
            InstanceNorm(c1),
            nn.ReLU(inplace=True),
            make.down(c1, c2),
            InstanceNorm(c2),
            nn.ReLU(inplace=True),
            make.down(c2, c4),
            InstanceNorm(c4),
            nn.ReLU(inplace=True),
        )
        self.middle = nn.Sequential(*(ResidualBlock(c4, make) for _ in range(residual_blocks)))
        self.decoder = nn.Sequential(
            make.up(c4, c2),
            InstanceNorm(c2),
            nn.ReLU(inplace=True),
            make.up(c2, c1),
            InstanceNorm(c1),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3),
            RowSumConv2d(c1, 1, 7),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_divisible("EdgeGenerator", x, self.factor)
        height, width = x.shape[-2:]
        if min(height, width) < self.min_size:
            raise ValueError(
                f"EdgeGenerator needs height and width of at least {self.min_size}, "
                f"got {height}x{width}"
            )
        x = self.decoder(self.middle(self.encoder(x)))
        return torch.sigmoid(x.float())


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: C64(s2)-C128(s2)-C256(s2)-C512(s1)-C1(s1), 4x4 kernels, padding 1.

    Returns raw logits (B, 1, h, w), one per overlapping 70x70 patch, and the maps of all
    five layers, the logits last, for the feature-matching loss (as EdgeConnect). Instance
    norm (norm="instance") sits on the three middle layers only; spectral norm, when
    enabled, on all five convs.
    """

    min_size = 24  # three halvings, then two 4x4 convolutions that each take a pixel off

    def __init__(
        self,
        in_channels: int = 2,
        base: int = 64,
        norm: str = "instance",
        use_spectral_norm: bool = True,
    ):
        super().__init__()
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be one of ('instance', 'none'), got {norm!r}")
        widths = [base, 2 * base, 4 * base, 8 * base]
        strides = [2, 2, 2, 1]
        self.layers = nn.ModuleList()
        channels = in_channels
        for index, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            normed = norm == "instance" and index > 0
            # A bias in front of instance norm is cancelled by it, so leave it out there.
            conv = nn.Conv2d(channels, width, 4, stride=stride, padding=1, bias=not normed)
            layer = [maybe_spectral_norm(conv, use_spectral_norm)]
            if normed:
                layer.append(InstanceNorm(width))
            layer.append(nn.LeakyReLU(0.2, inplace=True))
            self.layers.append(nn.Sequential(*layer))
            channels = width
        self.head = maybe_spectral_norm(
            nn.Conv2d(channels, 1, 4, stride=1, padding=1), use_spectral_norm
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        height, width = x.shape[-2:]
        if min(height, width) < self.min_size:
            raise ValueError(
                f"PatchDiscriminator needs height and width of at least {self.min_size}, "
                f"got {height}x{width}: train on data.image_size >= {self.min_size}"
            )
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        logits = self.head(x)
        return logits, [*features, logits]
