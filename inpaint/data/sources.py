"""Where images come from: one class per data set layout, each giving a sequence per split.

A source checks its layout when it is built, so a wrong path stops the run before training
with a message that names the path and the layout expected.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inpaint.data.images import (
    UnreadableImageError,
    is_readable_image,
    list_images,
    read_image,
    to_float_rgb,
)

SPLITS = ("train", "val", "test")

# Colour photographs shipped inside scikit-image: no download needed. The motorcycle
# stereo pair shows one scene, so both stay on the training side.
SAMPLE_PHOTOS = {
    "train": [
        "chelsea.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "motorcycle_right.png",
        "hubble_deep_field.jpg",
        "ihc.png",
        "retina.jpg",
    ],
    "val": ["astronaut.png", "coffee.png"],
    "test": ["astronaut.png", "coffee.png"],
}


class ArrayImages(Sequence):
    """Images held in memory as float32 RGB arrays."""

    def __init__(self, images: Sequence[np.ndarray], names: Sequence[str]):
        self.images, self.names = list(images), list(names)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index]


class FileImages(Sequence):
    """Image files read on demand. Files whose header is unreadable are dropped once, with
    one warning; one that fails to decode later is replaced by the next, with a warning (shown
    once per file and process, as Python shows a repeated warning)."""

    def __init__(self, paths: Sequence[Path], description: str, center_crop: int | None = None):
        paths = list(paths)
        readable = [p for p in paths if is_readable_image(p)]
        skipped = len(paths) - len(readable)
        missing = [p for p in paths if not p.is_file()] if skipped else []
        absent = f" ({len(missing)} missing, e.g. {missing[0]})" if missing else ""
        if not paths:
            raise FileNotFoundError(f"{description} holds no image files")
        if not readable:
            raise FileNotFoundError(
                f"no readable image among {len(paths)} files of {description}{absent}"
            )
        if skipped:
            warnings.warn(
                f"{description}: skipped {skipped} unreadable of {len(paths)} image files{absent}",
                stacklevel=2,
            )
        self.paths, self.center_crop = readable, center_crop
        self.names = [str(p) for p in readable]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        count = len(self.paths)
        if not -count <= index < count:
            raise IndexError(f"image index {index} out of range for {count} images")
        for offset in range(count):
            path = self.paths[(index + offset) % count]
            try:
                image = read_image(path)
            except UnreadableImageError as error:
                warnings.warn(f"{error}; using the next image instead", stacklevel=2)
                continue
            return self._crop(image)
        raise UnreadableImageError(f"none of the {len(self.paths)} image files can be decoded")

    def _crop(self, image: np.ndarray) -> np.ndarray:
        if self.center_crop is None:
            return image
        height, width = image.shape[:2]
        side = min(self.center_crop, height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return image[top : top + side, left : left + side]


def _require(path: Path, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; expected layout: {layout}")
    return path


def _holdout_size(fraction: float, count: int) -> int:
    """At least one image for any positive fraction, so small folders get every split."""
    return max(1, round(fraction * count)) if fraction > 0 else 0


def _seeded_split(items: list, holdout: int, seed: int) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(items))
    keep = [items[i] for i in sorted(order[holdout:])]
    held = [items[i] for i in sorted(order[:holdout])]
    return keep, held


class SamplePhotos:
    """The embedded data set: scikit-image's colour photographs, split by photograph."""

    def __init__(self, photos: dict[str, list[str]] | None = None):
        import skimage.data

        data_dir = Path(skimage.data.__file__).parent
        photos = photos or SAMPLE_PHOTOS
        overlap = set(photos["train"]) & (set(photos["val"]) | set(photos["test"]))
        if overlap:
            raise ValueError(f"sample photos used for training and evaluation: {sorted(overlap)}")
        self._splits = {}
        for split in SPLITS:
            arrays = [
                read_image(_require(data_dir / name, "a photo shipped by scikit-image"))
                for name in photos[split]
            ]
            self._splits[split] = ArrayImages(arrays, photos[split])

    def split(self, name: str) -> ArrayImages:
        return self._splits[name]


class ImageFolder:
    """Any folder tree of images, split by seeded fractions or by split files.

    A split file lists one image path per line, relative to `root`.
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        split_files: dict[str, str] | None = None,
    ):
        self.root = _require(
            Path(root), "a folder (searched recursively) of .png/.jpg/.bmp/.tif images"
        )
        if split_files:
            self._paths = {split: self._read_split_file(split, split_files) for split in SPLITS}
            self._check_disjoint(split_files)
        else:
            paths = list_images(self.root)
            if not paths:
                raise FileNotFoundError(
                    f"{self.root} holds no image files (.png, .jpg, .bmp, .tif, .webp)"
                )
            test_count = _holdout_size(test_fraction, len(paths))
            val_count = _holdout_size(val_fraction, len(paths))
            if test_count + val_count >= len(paths):
                raise ValueError(
                    f"{self.root}: {len(paths)} images cannot be split with "
                    f"val_fraction={val_fraction}, test_fraction={test_fraction}; "
                    "add images or give split_files"
                )
            rest, test = _seeded_split(paths, test_count, split_seed)
            train, val = _seeded_split(rest, val_count, split_seed + 1)
            self._paths = {"train": train, "val": val, "test": test}

    def _read_split_file(self, split: str, split_files: dict[str, str]) -> list[Path]:
        if split not in split_files:
            raise KeyError(
                f"data.source.split_files needs a '{split}' entry (a text file of image paths)"
            )
        listing = _require(Path(split_files[split]), "a text file with one image path per line")
        lines = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        return [self.root / line for line in lines]

    def _check_disjoint(self, split_files: dict[str, str]) -> None:
        """An image listed in two splits would be scored on what it trained on."""
        resolved = {split: {p.resolve() for p in paths} for split, paths in self._paths.items()}
        for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = sorted(resolved[first] & resolved[second])
            if shared:
                names = ", ".join(os.path.relpath(p, self.root.resolve()) for p in shared[:5])
                raise ValueError(
                    f"data.source.split_files: {first} ({split_files[first]}) and {second} "
                    f"({split_files[second]}) share {len(shared)} image(s): {names}"
                )

    def split(self, name: str) -> FileImages:
        return FileImages(self._paths[name], f"{self.root} ({name} split)")


class Cifar10:
    """CIFAR-10 python batches: `cifar-10-batches-py/data_batch_1..5` and `test_batch`."""

    layout = (
        "ROOT/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch} (the python version)"
    )

    def __init__(self, root: str, val_size: int = 5000, split_seed: int = 0):
        folder = _require(Path(root), self.layout)
        if not (folder / "data_batch_1").exists():
            folder = folder / "cifar-10-batches-py"
        train = np.concatenate([self._load(folder, f"data_batch_{i}") for i in range(1, 6)])
        test = self._load(folder, "test_batch")
        order = np.random.default_rng(split_seed).permutation(len(train))
        self._arrays = {
            "train": train[np.sort(order[val_size:])],
            "val": train[np.sort(order[:val_size])],
            "test": test,
        }

    def _load(self, folder: Path, name: str) -> np.ndarray:
        path = _require(folder / name, self.layout)
        try:
            with path.open("rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            raise ValueError(
                f"{path} is not a readable CIFAR-10 python batch ({error}; truncated?); "
                f"expected layout: {self.layout}"
            ) from None
        if b"data" not in batch:
            raise ValueError(f"{path} is not a CIFAR-10 python batch (no b'data' entry)")
        return np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    def split(self, name: str) -> ArrayImages:
        pixels = self._arrays[name]
        return ArrayImages(
            [to_float_rgb(image) for image in pixels],
            [f"cifar10/{name}/{i}" for i in range(len(pixels))],
        )


class CelebA:
    """Aligned CelebA: `img_align_celeba/` and the official `list_eval_partition.txt`.

    Faces are centre-cropped to 178x178 (the usual crop) before resizing to the image size.
    """

    layout = (
        "ROOT/img_align_celeba/*.jpg and ROOT/list_eval_partition.txt ('000001.jpg 0' per line)"
    )

    def __init__(self, root: str, center_crop: int = 178):
        root_path = _require(Path(root), self.layout)
        images = _require(root_path / "img_align_celeba", self.layout)
        partition = _require(root_path / "list_eval_partition.txt", self.layout)
        self._paths = {split: [] for split in SPLITS}
        for number, line in enumerate(partition.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{partition}:{number}: expected 'FILENAME 0|1|2', got {line!r}")
            self._paths[SPLITS[int(fields[1])]].append(images / fields[0])
        self.center_crop, self.partition = center_crop, partition

    def split(self, name: str) -> FileImages:
        return FileImages(
            self._paths[name],
            f"CelebA {name} split ('{SPLITS.index(name)}' lines of {self.partition})",
            center_crop=self.center_crop,
        )


class ParisStreetView:
    """Paris StreetView: `paris_train_original/` for training, `paris_eval_gt/` for test.

    Validation is a seeded hold-out of the training photos, so the test set stays unseen.
    """

    layout = "ROOT/paris_train_original/*.png|jpg and ROOT/paris_eval_gt/*.png|jpg"

    def __init__(self, root: str, val_size: int = 100, split_seed: int = 0):
        root_path = _require(Path(root), self.layout)
        train_folder = _require(root_path / "paris_train_original", self.layout)
        train = list_images(train_folder)
        if len(train) < 2:
            raise FileNotFoundError(
                f"{train_folder} holds {len(train)} images: training and its validation "
                f"hold-out need at least 2; expected layout: {self.layout}"
            )
        test = list_images(_require(root_path / "paris_eval_gt", self.layout))
        train, val = _seeded_split(train, min(val_size, len(train) // 2), split_seed)
        self._paths = {"train": train, "val": val, "test": test}

    def split(self, name: str) -> FileImages:
        return FileImages(self._paths[name], f"Paris StreetView {name} split")
