"""The LightningDataModule every model shares: a source of images plus a mask generator."""

from __future__ import annotations

from lightning import LightningDataModule
from torch.utils.data import DataLoader

from inpaint.data.dataset import InpaintingDataset, require_seed
from inpaint.data.edges import EdgeDetector, add_edges
from inpaint.data.masks import MaskGenerator


class InpaintDataModule(LightningDataModule):
    """Builds train/val/test InpaintingDatasets from `source.split(name)`.

    `train_length` / `eval_length` fix the number of crops per epoch for sources with few,
    large images (the embedded photos); left empty, every image is one sample. Shorter than
    the image list, a training epoch draws its images at random from all of them, and
    validation and test take the first `eval_length`.
    `edges` adds Canny edges to each batch: in the loader workers (method "opencv") or on
    the training device after transfer (method "kornia").
    """

    def __init__(
        self,
        source,
        mask: MaskGenerator,
        image_size: int = 64,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        resize: bool = False,
        train_length: int | None = None,
        eval_length: int | None = None,
        pin_memory: bool = False,
        edges: EdgeDetector | None = None,
    ):
        super().__init__()
        if not isinstance(mask, MaskGenerator):
            raise ValueError(
                f"the data module draws masks, but mask is a {type(mask).__name__}: mask files "
                "belong to whole images (inpaint.evaluate images=DIR, inpaint.predict); "
                "choose a mask generator such as mask=lines"
            )
        if image_size < 8:
            raise ValueError(f"data.image_size must be at least 8 pixels, got {image_size}")
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be at least 1, got {batch_size}")
        self.source, self.mask = source, mask
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.seed = require_seed(seed, "data.seed")
        self.resize, self.pin_memory = resize, pin_memory
        self.lengths = {"train": train_length, "val": eval_length, "test": eval_length}
        self.edges = edges
        self.datasets: dict[str, InpaintingDataset] = {}

    def dataset(self, split: str) -> InpaintingDataset:
        if split not in self.lengths:
            raise ValueError(f"split must be one of {sorted(self.lengths)}, got {split!r}")
        if split not in self.datasets:
            self.datasets[split] = self._build(split, split == "train", self.lengths[split])
        return self.datasets[split]

    def evaluation_dataset(self, split: str) -> InpaintingDataset:
        """Seeded samples of any split, the training split too (`eval_length` of them): how a
        model does on the images it learnt from, beside those it never saw."""
        if split != "train":
            return self.dataset(split)
        return self._build(split, False, self.lengths["val"])

    def _build(self, split: str, train: bool, length: int | None) -> InpaintingDataset:
        return InpaintingDataset(
            self.source.split(split),
            self.mask,
            self.image_size,
            train=train,
            seed=self.seed,
            split=split,
            length=length,
            resize=self.resize,
            edges=self.edges,
        )

    @property
    def per_process_batch_size(self) -> int:
        """`batch_size` is global: under DDP each process loads its share of it."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} does not divide among {world} processes; "
                f"use a multiple of {world}"
            )
        return self.batch_size // world

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"]}.get(
            stage, ["train", "val", "test"]
        )
        for split in splits:
            self.dataset(split)

    def _loader(self, split: str) -> DataLoader:
        """Training drops a last partial batch, unless there would be no full one: each of
        the DDP processes gets 1 / world of the samples, as of the (global) batch."""
        train = split == "train"
        return DataLoader(
            self.dataset(split),
            batch_size=self.per_process_batch_size,
            shuffle=train,
            drop_last=train and len(self.dataset(split)) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.edges is not None and self.edges.method == "kornia":
            return add_edges(batch, self.edges)
        return batch
