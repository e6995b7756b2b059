"""One sample = one crop of one image, one mask and its damage, as a dict of tensors."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from inpaint.data.damage import damage, make_fill, other_index
from inpaint.data.edges import EdgeDetector
from inpaint.data.masks import MaskGenerator


def require_seed(seed, key: str) -> int:
    """Seeded masks and crops need an integer; `seed=null` would fail deep inside numpy."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{key}={seed!r}: give an integer seed (seed=N); it seeds the masks")
    return seed


def split_key(split: str) -> int:
    """A stable number per split name, so val and test draw different masks from one seed."""
    return zlib.crc32(split.encode())


class InpaintingDataset(Dataset):
    """Crops, augments, masks and damages images from an image sequence.

    Evaluation samples (`train=False`) are a pure function of (seed, split, index): the same
    crop, mask and fill on every epoch, run and machine. Training samples draw fresh
    randomness from torch's generator, which Lightning seeds per worker.
    With an OpenCV edge detector, samples also carry `gray` (the clean grey image), `edge`
    (its Canny edges) and `damaged_edge` (Canny of the grey damaged image, hole excluded).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        mask: MaskGenerator,
        image_size: int,
        train: bool,
        seed: int = 0,
        split: str = "train",
        length: int | None = None,
        resize: bool = False,
        edges: EdgeDetector | None = None,
    ):
        if len(images) == 0:
            raise ValueError(f"the {split} split holds no images")
        if mask.fill == "image" and len(images) < 2:
            raise ValueError(
                f"mask.fill=image fills each hole from another photo of the split, and the "
                f"{split} split holds one: give more photos or another mask.fill "
                "(zeros, ones, colour, noise)"
            )
        self.images, self.mask, self.size = images, mask, int(image_size)
        self.train, self.seed, self.split = train, seed, split
        self.length = int(length) if length else len(images)
        self.edges = edges
        geometry = [A.SmallestMaxSize(max_size=self.size, p=1.0)] if resize else []
        geometry += [
            A.PadIfNeeded(min_height=self.size, min_width=self.size, border_mode=4, p=1.0),
            A.RandomCrop(height=self.size, width=self.size, p=1.0),
        ]
        self.crop = A.Compose(geometry)
        # Its own pipeline and seed: albumentations seeds every transform of a Compose alike,
        # which made the flip follow the crop's vertical position.
        self.flip = A.Compose([A.HorizontalFlip(p=0.5)]) if train else None

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if self.train:
            # torch's generator is seeded alike on every DDP rank: add the rank, so that
            # ranks do not draw the same masks and crops for their different images.
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            return np.random.default_rng([int(torch.randint(0, 2**62, ()).item()), rank])
        return np.random.default_rng([self.seed, split_key(self.split), index])

    def _transform(
        self, pipeline: A.Compose, image: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        pipeline.set_random_seed(int(rng.integers(0, 2**31)))
        return pipeline(image=image)["image"]

    def _image_index(self, index: int, rng: np.random.Generator) -> int:
        """Sample i crops image i (cycling), but a training epoch shorter than the image list
        draws its images at random: by index alone, all past the first `length` would never
        be trained on."""
        if self.train and self.length < len(self.images):
            return int(rng.integers(0, len(self.images)))
        return index % len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        image_index = self._image_index(index, rng)
        image = self._transform(self.crop, self.images[image_index], rng)
        if self.flip is not None:
            image = self._transform(self.flip, image, rng)
        mask = self.mask(rng, self.size, self.size)
        other = None
        if self.mask.fill == "image":
            other_image = self.images[other_index(image_index, len(self.images), rng)]
            other = self._transform(self.crop, other_image, rng)
        fill = make_fill(self.mask.fill, rng, image.shape, other)
        damaged = damage(image, mask, fill)
        sample = {
            "image": _chw(image),
            "mask": torch.from_numpy(mask[None]),
            "damaged": _chw(damaged),
            "index": index,
        }
        if self.edges is not None and self.edges.method == "opencv":
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            damaged_gray = cv2.cvtColor(damaged, cv2.COLOR_RGB2GRAY)
            sample["gray"] = torch.from_numpy(gray[None])
            sample["edge"] = torch.from_numpy(self.edges.numpy(gray)[None])
            sample["damaged_edge"] = torch.from_numpy(self.edges.numpy(damaged_gray, mask)[None])
        return sample


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
