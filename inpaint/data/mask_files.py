"""Masks read from files, matched to images by name: white (255) = hole, or black with invert."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from inpaint.data.images import IMAGE_SUFFIXES, read_pixels


def read_mask(path: str | Path, invert: bool = False) -> np.ndarray:
    """A mask file as float32 (H, W) in [0, 1], 1 = hole; colour masks count their brightest
    channel, grey levels give continuous damage."""
    pixels = read_pixels(path)
    if pixels.ndim == 3:
        pixels = pixels[:, :, :3].max(axis=2)
    if np.issubdtype(pixels.dtype, np.integer):
        mask = pixels.astype(np.float32) / np.iinfo(pixels.dtype).max
    else:
        mask = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    return 1.0 - mask if invert else mask


def check_mask_size(mask: np.ndarray, mask_path: Path, image_path: Path, shape) -> None:
    """A mask must cover its image pixel for pixel; the error names both files."""
    if mask.shape[:2] != tuple(shape[:2]):
        raise ValueError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} pixels but image "
            f"{image_path} is {shape[1]}x{shape[0]}: a mask must have its image's size"
        )


class MaskFiles:
    """A folder of mask files; the mask of `photos/a.jpg` (relative to the image folder) is
    `root/photos/a.<any image suffix>`.

    `fill` is what damages the hole when the masks are applied to clean images
    (`inpaint.evaluate`); see inpaint/data/damage.py.
    """

    def __init__(self, root: str | None = None, invert: bool = False, fill: str = "zeros"):
        if not root:
            raise ValueError("mask=files reads masks from a folder: give mask.root=MASKS")
        self.root, self.invert, self.fill = Path(root), invert, fill
        if not self.root.is_dir():
            raise FileNotFoundError(f"mask folder not found: {self.root} (mask.root)")

    def find(self, relative: str | Path, image_path: Path | None = None) -> Path:
        """The mask file named like the image: with its own suffix, with `.png` added (as
        predict names the mask of `a.jpg` beside `a.png`), or with any image suffix in any
        case, unless an image of that name lies beside `image_path`: `a.png` is then the
        mask of the image `a.png`, not of `a.jpg`."""
        relative = Path(relative)
        folder = self.root / relative.parent
        own = folder / relative.name
        if image_path and own.resolve() == image_path.resolve():
            raise ValueError(
                f"mask folder {self.root} is the folder of image {image_path}: each image "
                "would be its own mask; keep the masks in a folder of their own"
            )
        for exact in (own, folder / f"{relative.name}.png"):
            if exact.is_file():
                return exact
        named_alike, taken = [], []
        for candidate in sorted(folder.glob(f"{glob.escape(relative.stem)}.*")):
            if not (
                candidate.stem == relative.stem
                and candidate.suffix.lower() in IMAGE_SUFFIXES
                and candidate.is_file()
            ):
                continue
            beside = image_path and (image_path.parent / candidate.name).is_file()
            (taken if beside else named_alike).append(candidate)
        if named_alike:
            return named_alike[0]
        others = "".join(f"; {c.name} would be the mask of the image beside it" for c in taken)
        raise FileNotFoundError(
            f"no mask for image {relative} in {self.root}: expected {own}, {own}.png or "
            f"{folder / relative.stem}.<another image suffix>{others}"
        )

    def load(self, image_path: Path, relative: str | Path, shape) -> np.ndarray:
        """The mask of one image, checked against the image's (H, W)."""
        mask_path = self.find(relative, Path(image_path))
        mask = read_mask(mask_path, self.invert)
        check_mask_size(mask, mask_path, image_path, shape)
        return mask
