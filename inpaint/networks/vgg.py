"""VGG19 feature extractor for perceptual and style losses, loaded from a local weights file.

Nothing is downloaded: the user passes a state dict saved from torchvision's `vgg19`
(keys `features.N.weight`, `features.N.bias`; classifier keys are ignored).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from inpaint.torch_files import load_torch_file, state_dict_mismatch

# torchvision's VGG19 "E" configuration: channels per conv, "M" for max pooling.
VGG19_LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"]
# ReLU outputs of EdgeConnect's perceptual loss (relu1_1..relu5_1), here used for the style
# loss too (EdgeConnect's style loss takes relu2_2, relu3_4, relu4_4, relu5_2).
FEATURE_LAYERS = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 convolutional trunk returning the relu*_1 activations of [0, 1] images."""

    def __init__(self, weights_path: str | Path):
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG19 weights file not found: {path}. Save torchvision's vgg19 state dict "
                "there (torch.save(vgg19(weights=...).state_dict(), PATH)); nothing is downloaded."
            )
        layers: list[nn.Module] = []
        channels = 3
        for spec in VGG19_LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU(inplace=False)]
                channels = spec
        self.features = nn.Sequential(*layers[: max(FEATURE_LAYERS.values()) + 1])
        state = load_torch_file(path, "a VGG19 state dict", weights_only=True)
        trunk = {
            k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
        }
        trunk = {k: v for k, v in trunk.items() if int(k.split(".")[0]) < len(self.features)}
        try:
            missing, _ = self.features.load_state_dict(trunk, strict=False)
        except RuntimeError as error:  # layers of other shapes: another VGG
            raise ValueError(
                f"{path} is not a VGG19 state dict: {state_dict_mismatch(error)}"
            ) from None
        if missing:
            raise ValueError(f"{path} is not a VGG19 state dict: missing {missing[:4]}...")
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in FEATURE_LAYERS.values():
                outputs.append(x)
        return outputs
