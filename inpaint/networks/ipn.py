"""IPN, the inpainting network: DeepFill v2's gated coarse-to-fine generator and SN-PatchGAN.

Widths follow DeepFill v2's code, whose `gen_conv(width)` is a convolution to `width`
channels split into width/2 features and width/2 gates; `gated(c_in, width)` below keeps
that convention, so cnum=48 gives DeepFill's ~4 M parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inpaint.networks.blocks import GatedConv2d, maybe_spectral_norm, require_divisible
from inpaint.networks.contextual_attention import ContextualAttention


def gated(
    in_channels: int,
    width: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    activation: nn.Module | None = None,
) -> GatedConv2d:
    """DeepFill v2's gen_conv: `width` conv channels -> width // 2 gated ELU features."""
    return GatedConv2d(
        in_channels,
        width // 2,
        kernel_size,
        stride=stride,
        dilation=dilation,
        activation=nn.ELU() if activation is None else activation,
    )


def upsample(in_channels: int, width: int) -> nn.Sequential:
    """DeepFill v2's gen_deconv: nearest x2, then a gated 3x3 conv (no checkerboard)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), gated(in_channels, width))


def dilated_block(cnum: int) -> list[nn.Module]:
    """Four gated 3x3 convs at 1/4 resolution, dilations 2, 4, 8, 16: a wide receptive field."""
    return [gated(2 * cnum, 4 * cnum, dilation=rate) for rate in (2, 4, 8, 16)]


def decoder(in_channels: int, cnum: int) -> nn.Sequential:
    """From 1/4 resolution back to a 3-channel image in [-1, 1] (DeepFill's conv11-17)."""
    return nn.Sequential(
        gated(in_channels, 4 * cnum),
        gated(2 * cnum, 4 * cnum),
        upsample(2 * cnum, 2 * cnum),
        gated(cnum, 2 * cnum),
        upsample(cnum, cnum),
        gated(cnum // 2, cnum // 2),
        nn.Conv2d(cnum // 4, 3, 3, padding=1),  # the output layer: no gate
        nn.Tanh(),
    )


class InpaintGenerator(nn.Module):
    """DeepFill v2 generator: a coarse net, then a refinement net with contextual attention.

    forward(damaged, mask, edge) takes the damaged image in [0, 1], the hole mask (1 = hole,
    may be continuous) and the edge map, and returns (coarse, refined), both (B, 3, H, W) in
    [0, 1]. H and W must be multiples of 8 (two downsamplings, then attention at rate 2).
    No skip connections: the hole must be filled from context, not copied through.
    `hole_threshold`: mask values above it keep a background patch out of the attention;
    raise it above 0 for predicted (soft) masks, which are rarely exactly 0.
    """

    factor = 8

    def __init__(self, in_channels: int = 5, cnum: int = 48, hole_threshold: float = 0.0):
        super().__init__()
        if cnum % 4:
            raise ValueError(f"InpaintGenerator needs cnum divisible by 4, got {cnum}")
        c = cnum
        self.coarse = nn.Sequential(
            gated(in_channels, c, 5),
            gated(c // 2, 2 * c, stride=2),
            gated(c, 2 * c),
            gated(c, 4 * c, stride=2),
            gated(2 * c, 4 * c),
            gated(2 * c, 4 * c),
            *dilated_block(c),
            decoder(2 * c, c),
        )
        # Refinement, branch 1: dilated convolutions hallucinate from the surroundings.
        self.refine_conv = nn.Sequential(
            gated(in_channels, c, 5),
            gated(c // 2, c, stride=2),
            gated(c // 2, 2 * c),
            gated(c, 2 * c, stride=2),
            gated(c, 4 * c),
            gated(2 * c, 4 * c),
            *dilated_block(c),
        )
        # Refinement, branch 2: contextual attention copies matching features from outside
        # the hole. ReLU before it as in DeepFill: non-negative features to match.
        self.refine_attention_encoder = nn.Sequential(
            gated(in_channels, c, 5),
            gated(c // 2, c, stride=2),
            gated(c // 2, 2 * c),
            gated(c, 4 * c, stride=2),
            gated(2 * c, 4 * c),
            gated(2 * c, 4 * c, activation=nn.ReLU()),
        )
        self.attention = ContextualAttention(
            patch_size=3, rate=2, softmax_scale=10.0, fuse=True, hole_threshold=hole_threshold
        )
        self.refine_attention_decoder = nn.Sequential(gated(2 * c, 4 * c), gated(2 * c, 4 * c))
        self.refine_decoder = decoder(4 * c, c)
        self._init_weights()

    def _init_weights(self) -> None:
        """Keep activations from fading through ~20 gated layers at initialisation.

        A gate's sigmoid is about 1/2 at init, which quarters the variance of a layer's
        output; weights of variance 4 / fan_in make up for it (as He's 2 / fan_in does for
        ReLU's halving). With PyTorch's default the activations shrink ~10x within two
        layers and the generator starts as a near-constant image, which trains slowly.
        """
        for module in self.modules():
            if isinstance(module, GatedConv2d):
                conv = module.conv
                fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
                nn.init.normal_(conv.weight, std=math.sqrt(4 / fan_in))
                nn.init.zeros_(conv.bias)

    def forward(
        self, damaged: torch.Tensor, mask: torch.Tensor, edge: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        require_divisible("InpaintGenerator", damaged, self.factor)
        x = torch.cat([damaged * 2 - 1, mask, edge], dim=1)
        coarse = (self.coarse(x) + 1) / 2

        # Refine the composite: coarse guess in the hole, the known pixels elsewhere.
        composite = coarse * mask + damaged * (1 - mask)
        x = torch.cat([composite * 2 - 1, mask, edge], dim=1)
        hallucinated = self.refine_conv(x)
        features = self.refine_attention_encoder(x)
        features = self.attention(features, features, mask)
        features = self.refine_attention_decoder(features)
        refined = (self.refine_decoder(torch.cat([hallucinated, features], dim=1)) + 1) / 2
        return coarse, refined


class SNPatchGANDiscriminator(nn.Module):
    """DeepFill v2's SN-PatchGAN: six spectral-normalised 5x5 stride-2 convs.

    Input: cat(image, mask, edge). Output: the last feature map (B, 4 cnum, H/64, W/64),
    every element a real/fake score for one patch (the hinge loss averages them).
    Runs in fp32 under autocast: in bf16 its spectral-normalised last layer was seen to
    turn NaN after one optimiser step (toy widths, 32 px), poisoning the generator too.
    """

    def __init__(self, in_channels: int = 5, cnum: int = 64):
        super().__init__()
        widths = [cnum, 2 * cnum, 4 * cnum, 4 * cnum, 4 * cnum, 4 * cnum]
        layers: list[nn.Module] = []
        for width in widths:
            conv = nn.Conv2d(in_channels, width, 5, stride=2, padding=2)
            layers += [maybe_spectral_norm(conv, True), nn.LeakyReLU(0.2)]
            in_channels = width
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.layers(x.float())
