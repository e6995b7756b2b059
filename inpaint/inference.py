"""A trained checkpoint of any kind behind one call: damaged images (and perhaps masks) in,
restored images out. `inpaint.evaluate`, `inpaint.predict`, the bench and the notebook use it.

Kinds, by the LightningModule that trained the checkpoint:
- `unet`: damaged image in, image out; it predicts no mask, and takes one only when it was
  trained with `model.mask_input=true`.
- `ipn`: needs the mask; its edge input is Canny of the damaged image outside the hole
  (the true edges it saw in training are unknown on a real photo).
- `blind`: predicts the mask (MPN), the edges (EPN) and paints (IPN); a given mask
  replaces the predicted one.
- `joint_epn_mpn`: predicts mask and edges, paints nothing.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning import LightningModule
from torch.nn import functional as F

from inpaint.data.edges import EdgeDetector, to_gray
from inpaint.devices import pick_device, slow_bf16
from inpaint.torch_files import load_torch_file, require_checkpoint_file

KINDS = {"UNetInpainter": "unet", "IPNModule": "ipn", "BlindInpainter": "blind"}
PRECISIONS = ("32", "bf16")


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by `inpaint.run`, with the model config it stores checked."""
    path = require_checkpoint_file(path)
    checkpoint = load_torch_file(path, "a checkpoint")
    if not (
        isinstance(checkpoint, dict)
        and "state_dict" in checkpoint
        and checkpoint.get("hyper_parameters", {}).get("config")
    ):
        raise ValueError(
            f"{path} holds no model config (hyper_parameters.config): "
            "use a checkpoint written by python -m inpaint.run"
        )
    return checkpoint


def blend_by_mask(paint, image, mask):
    """The paint weighted by a predicted mask, the image by the rest (tensors or arrays)."""
    return mask * paint + (1 - mask) * image


class Inpainter:
    """Runs a trained module on batches of any size: pads to what the network takes, crops
    back, and returns intact pixels unchanged.

    Where the mask is predicted, pixels whose predicted damage is below `intact_below` count
    as intact (a sigmoid is never exactly 0).
    """

    def __init__(
        self,
        module: LightningModule,
        edges: EdgeDetector | None = None,
        device: str = "cpu",
        precision: str = "32",
        intact_below: float = 0.1,
    ):
        name = type(module).__name__
        if name not in KINDS:
            raise ValueError(
                f"a {name} checkpoint cannot inpaint; use one of {', '.join(sorted(KINDS))} "
                "(MPN and EPN checkpoints are evaluated by "
                "python -m inpaint.run experiment=NAME train=false ckpt_path=CKPT)"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.kind = KINDS[name]
        if self.kind == "blind" and "ipn" not in module.stages:
            self.kind = "joint_epn_mpn"
        self.device = pick_device(device)
        if precision == "bf16" and (reason := slow_bf16(self.device)):
            warnings.warn(f"precision=bf16: {reason}", stacklevel=2)
        self.module = module.to(self.device).eval()
        if edges is not None and getattr(module, "edges", None) is not None:
            module.edges = edges  # a chain's EPN stage computes its edges with it too
        self.edges = getattr(module, "edges", None) or edges or EdgeDetector()
        self.precision, self.intact_below = precision, intact_below
        # The configs the checkpoint was trained with (model, data, mask), when loaded from one.
        self.trained_with: dict = {}
        self.multiple = max(network.factor for network in self._networks())
        # The smallest side every network takes (the EPN's residual blocks need 3 pixels at
        # 1/4 resolution), a multiple of `multiple`: smaller images are padded up to it.
        smallest = max(getattr(network, "min_size", 1) for network in self._networks())
        self.min_side = -(-smallest // self.multiple) * self.multiple

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Inpainter:
        checkpoint = load_checkpoint(path)
        stored = checkpoint["hyper_parameters"]
        config = dict(stored["config"])
        # Training-time inputs that inference does not need: other checkpoints, VGG weights.
        # A staged model's weights are all in this checkpoint: rebuild it as the same chain.
        if "stage_checkpoints" in config:
            config["stage_checkpoints"] = None
        if config.get("mode") == "staged":
            config["mode"], config["freeze"] = "joint", []
        if "vgg_weights" in config:
            config["vgg_weights"] = None
        module = instantiate(config, _convert_="all")
        weights = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("vgg.")}
        module.load_state_dict(weights)
        if "edges" not in kwargs:  # the Canny settings it trained with, unless given
            edges_config = (stored.get("data") or {}).get("edges")
            kwargs["edges"] = instantiate(edges_config) if edges_config else None
        inpainter = cls(module, **kwargs)
        inpainter.trained_with = stored
        return inpainter

    def _networks(self) -> list[torch.nn.Module]:
        if self.kind == "unet":
            return [self.module.net]
        if self.kind == "ipn":
            return [self.module.generator]
        return list(self.module.generator.values())

    @property
    def predicts_mask(self) -> bool:
        return self.kind in ("blind", "joint_epn_mpn")

    @property
    def needs_mask(self) -> bool:
        return self.kind == "ipn" or (self.kind == "unet" and self.module.mask_input)

    @property
    def paints(self) -> bool:
        return self.kind != "joint_epn_mpn"

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        bottom = max(-height % self.multiple, self.min_side - height)
        right = max(-width % self.multiple, self.min_side - width)
        if not (bottom or right):
            return x
        mode = "reflect" if bottom < height and right < width else "replicate"
        return F.pad(x, (0, right, 0, bottom), mode=mode)

    @torch.no_grad()
    def __call__(
        self, damaged: torch.Tensor, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Damaged images (B, 3, H, W) in [0, 1] and optional masks (B, 1, H, W), 1 = hole.

        Returns `output` (B, 3, H, W) when the model paints, with `paint`, the network's
        image before it is put into the input; `mask` (given or predicted) and, for models
        with an edge stage, `edges` (B, 1, H, W); all float32 on the CPU.
        """
        if mask is None and self.needs_mask:
            raise ValueError(f"a {self.kind} model needs a mask: give one per image")
        wanted = (damaged.shape[0], 1, *damaged.shape[-2:])
        if mask is not None and tuple(mask.shape) != wanted:
            raise ValueError(
                f"masks must be (B, 1, H, W) = {wanted} for images {tuple(damaged.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        height, width = damaged.shape[-2:]
        x = self._pad(damaged.float().to(self.device))
        given = None if mask is None else self._pad(mask.float().to(self.device))
        with self._autocast():
            result = self._run(x, given)
        result = {k: v[..., :height, :width].float().cpu() for k, v in result.items()}
        if "output" in result:
            predicted = mask is None and self.predicts_mask
            result["paint"] = result["output"].clamp(0, 1)
            result["output"] = self._keep_intact(
                result["paint"], damaged.float().cpu(), result.get("mask"), predicted
            )
        return result

    def _run(self, damaged: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if self.kind == "unet":
            output = self.module(damaged, mask)
            return {"output": output} if mask is None else {"output": output, "mask": mask}
        if self.kind == "ipn":
            known = self.edges(to_gray(damaged).float(), mask).to(damaged.device)
            _, refined = self.module.generator(damaged, mask, known)
            return {"output": refined, "mask": mask, "edges": known}
        chain = self.module.run_chain(damaged, mask)
        result = {"mask": chain["mask"], "edges": chain["edges"]}
        if "refined" in chain:
            result["output"] = chain["refined"]
        return result

    def _keep_intact(self, painted, damaged, mask, predicted: bool) -> torch.Tensor:
        """The painted image in the hole, the input where the mask leaves pixels intact.

        A given mask is the damage itself: every pixel it touches (m > 0) is painted, as the
        IPN is trained and the classical baselines work; blending by m would keep
        (1 - m) of a damaged grey-scale pixel. A predicted mask is an estimate: the paint is
        blended in by it, and below `intact_below` the pixel is the input's.
        """
        if mask is None:  # a U-Net given no mask: its output is the answer everywhere
            return painted
        if not predicted:
            return torch.where(mask > 0, painted, damaged)
        return torch.where(mask < self.intact_below, damaged, blend_by_mask(painted, damaged, mask))
