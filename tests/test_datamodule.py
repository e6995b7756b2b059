"""InpaintDataModule end to end: sources, crops, masks and damage, as batches of tensors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from inpaint.data.datamodule import InpaintDataModule
from inpaint.data.dataset import InpaintingDataset
from inpaint.data.edges import EdgeDetector
from inpaint.data.masks import GreyscaleMask, LineMask, SquareMask
from inpaint.data.sources import SAMPLE_PHOTOS, ImageFolder, SamplePhotos

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("image", "mask", "damaged")
STEP = 4  # grey levels per pixel in the coordinate images below


@pytest.fixture(scope="module")
def photos() -> SamplePhotos:
    return SamplePhotos()


def coordinate_image(tag: int, size: int = 64) -> np.ndarray:
    """RGB with red = STEP * x, green = STEP * y, blue = 20 * tag (8-bit levels)."""
    x = np.arange(size, dtype=np.uint8) * STEP
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[..., 0] = x[None, :]
    rgb[..., 1] = x[:, None]
    rgb[..., 2] = 20 * tag
    return rgb


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    for tag in range(10):
        bgr = cv2.cvtColor(coordinate_image(tag), cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(root / f"photo{tag}.png"), bgr)
    return root


def folder_module(folder: Path, mask=None, **kwargs) -> InpaintDataModule:
    source = ImageFolder(str(folder), val_fraction=0.2, test_fraction=0.2, split_seed=0)
    kwargs.setdefault("image_size", 32)
    kwargs.setdefault("batch_size", 4)
    module = InpaintDataModule(source, mask or SquareMask(), **kwargs)
    module.setup()
    return module


def photo_module(photos, mask=None, seed: int = 0, **kwargs) -> InpaintDataModule:
    kwargs.setdefault("image_size", 32)
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("train_length", 8)
    kwargs.setdefault("eval_length", 6)
    module = InpaintDataModule(photos, mask or LineMask(), seed=seed, **kwargs)
    module.setup()
    return module


def hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.numpy().transpose(1, 2, 0)


def locate_crop(image: np.ndarray) -> tuple[int, int, int, bool]:
    """Where a crop of a coordinate image came from: (tag, top, left, flipped), checked exactly."""
    levels = np.rint(image * 255).astype(int)
    np.testing.assert_allclose(image * 255, levels, atol=1e-3)
    tag = levels[0, 0, 2] // 20
    assert np.all(levels[..., 2] == 20 * tag), "a crop comes from one image"
    top = levels[0, 0, 1] // STEP
    flipped = levels[0, 0, 0] > levels[0, -1, 0]
    left = (levels[0, -1, 0] if flipped else levels[0, 0, 0]) // STEP
    size = image.shape[0]
    expected = coordinate_image(tag)[top : top + size, left : left + size].astype(int)
    if flipped:
        expected = expected[:, ::-1]
    np.testing.assert_array_equal(levels, expected)
    return tag, top, left, flipped


def check_batch(batch: dict, batch_size: int, size: int) -> None:
    assert set(KEYS) <= set(batch)
    assert batch["image"].shape == (batch_size, 3, size, size)
    assert batch["mask"].shape == (batch_size, 1, size, size)
    assert batch["damaged"].shape == (batch_size, 3, size, size)
    for key in KEYS:
        assert batch[key].dtype == torch.float32
        assert batch[key].min() >= 0.0 and batch[key].max() <= 1.0
    image, mask, damaged = batch["image"], batch["mask"], batch["damaged"]
    intact = (mask == 0).expand_as(image)
    assert torch.equal(damaged[intact], image[intact]), "intact pixels must stay untouched"
    assert (mask > 0).any() and (mask == 0).any(), "masks should hold both holes and intact pixels"
    hole = (mask == 1).expand_as(image)
    assert not torch.equal(damaged[hole], image[hole]), "holes should be filled"


def test_samples_batches(photos):
    module = photo_module(photos)
    for loader in (module.train_dataloader(), module.val_dataloader(), module.test_dataloader()):
        batch = next(iter(loader))
        check_batch(batch, 4, 32)
    assert len(module.dataset("train")) == 8
    assert len(module.dataset("val")) == len(module.dataset("test")) == 6
    val_indices = torch.cat([batch["index"] for batch in module.val_dataloader()])
    assert val_indices.tolist() == list(range(6)), "evaluation is not shuffled"


def test_folder_batches(folder):
    module = folder_module(folder)
    assert [len(module.dataset(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    check_batch(next(iter(module.train_dataloader())), 4, 32)
    check_batch(next(iter(module.val_dataloader())), 2, 32)


@pytest.mark.parametrize("fill", ["zeros", "ones"])
def test_damage_relation_with_known_fill(folder, fill):
    module = folder_module(folder, mask=GreyscaleMask(fill=fill))
    value = 1.0 if fill == "ones" else 0.0
    for split in ("train", "val"):
        sample = module.dataset(split)[0]
        image, mask, damaged = sample["image"], sample["mask"], sample["damaged"]
        assert ((mask > 0) & (mask < 1)).any(), "a greyscale mask blends"
        expected = (1 - mask) * image + mask * value
        torch.testing.assert_close(damaged, expected, atol=1e-6, rtol=0)


def test_colour_fill_is_one_colour_per_sample(folder):
    module = folder_module(folder, mask=SquareMask(fill="colour"))
    colours = []
    for index in range(2):
        sample = module.dataset("val")[index]
        image, mask, damaged = sample["image"], sample["mask"], sample["damaged"]
        intact = (mask == 0).expand_as(image)
        assert torch.equal(damaged[intact], image[intact])
        hole = damaged[:, mask[0] == 1]
        assert hole.shape[1] > 0
        assert torch.equal(hole, hole[:, :1].expand_as(hole)), "one colour fills the hole"
        colours.append(hole[:, 0])
    assert not torch.equal(colours[0], colours[1])


def test_noise_fill_relation(folder):
    module = folder_module(folder, mask=SquareMask(fill="noise"))
    sample = module.dataset("val")[1]
    image, mask, damaged = sample["image"], sample["mask"], sample["damaged"]
    intact = (mask == 0).expand_as(image)
    assert torch.equal(damaged[intact], image[intact])
    noise = damaged[(mask == 1).expand_as(image)]
    assert noise.numel() > 100
    assert 0.35 < noise.mean() < 0.65 and noise.std() > 0.1


def test_image_fill_draws_another_crop(folder):
    module = folder_module(folder, mask=SquareMask(fill="image", side=(0.5, 0.5)))
    sample = module.dataset("val")[0]
    mask = sample["mask"][0].numpy()
    damaged = hwc(sample["damaged"])
    rows, cols = np.nonzero(mask == 1)
    patch = damaged[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    levels = np.rint(patch * 255).astype(int)
    assert np.all(levels[..., 2] == levels[0, 0, 2]) and levels[0, 0, 2] % 20 == 0
    assert np.all(np.diff(levels[..., 0], axis=1) == STEP), "the fill is an unflipped crop"
    assert np.all(np.diff(levels[..., 1], axis=0) == STEP)


@pytest.mark.parametrize("train", [False, True])
def test_image_fill_comes_from_another_photo_of_the_split(train):
    """A crop of the photo itself could leave the hole undamaged (a photo of the crop's size,
    as in CIFAR-10): with two photos, every fill is the other one's."""
    photos = [coordinate_image(tag, size=32).astype(np.float32) / 255 for tag in (1, 2)]
    mask = SquareMask(fill="image", side=(0.5, 0.5))
    dataset = InpaintingDataset(photos, mask, image_size=32, train=train, length=24)
    for sample in map(dataset.__getitem__, range(len(dataset))):
        image_tag = int(round(sample["image"][2, 0, 0].item() * 255))
        hole = sample["mask"][0] == 1
        fill_tags = set(np.rint(sample["damaged"][2][hole].numpy() * 255).astype(int).tolist())
        assert fill_tags == {20 + 40 - image_tag}  # tags 1 and 2: blue 20 and 40


def test_image_fill_refuses_a_split_of_one_photo():
    mask = SquareMask(fill="image")
    with pytest.raises(ValueError, match="mask.fill=image .* the val split holds one"):
        InpaintingDataset([coordinate_image(1)], mask, image_size=32, train=False, split="val")


def test_evaluation_crops_come_from_the_split_images(folder):
    module = folder_module(folder)
    for split in ("val", "test"):
        dataset = module.dataset(split)
        tags = [int(Path(n).stem[-1]) for n in dataset.images.names]
        assert len(set(tags)) == len(tags) == 2
        for index in range(len(dataset)):
            tag, _, _, flipped = locate_crop(hwc(dataset[index]["image"]))
            assert tag == tags[index % len(tags)], "sample i is a crop of image i"
            assert not flipped, "evaluation crops are not flipped"


def test_training_epoch_visits_every_image(folder):
    dataset = folder_module(folder).dataset("train")
    tags = [int(Path(n).stem[-1]) for n in dataset.images.names]
    seen = [locate_crop(hwc(dataset[index]["image"]))[0] for index in range(len(dataset))]
    assert seen == tags


def test_a_training_epoch_shorter_than_the_image_list_draws_from_every_image(folder):
    dataset = folder_module(folder, train_length=2).dataset("train")
    tags = {int(Path(n).stem[-1]) for n in dataset.images.names}
    assert len(dataset) == 2 < len(tags) == 6

    def drawn(seed):
        torch.manual_seed(seed)  # what seeds the draws: torch's generator, as for the crops
        return [locate_crop(hwc(dataset[index % 2]["image"]))[0] for index in range(40)]

    assert set(drawn(0)) == tags  # seeded: 40 draws from 6 images miss none with p = 0.996
    assert drawn(0) == drawn(0) != drawn(1)


def test_evaluation_shorter_than_the_image_list_takes_its_first_images(folder):
    source = ImageFolder(str(folder), val_fraction=0.6, test_fraction=0.2, split_seed=0)
    module = InpaintDataModule(source, SquareMask(), image_size=32, batch_size=4, eval_length=3)
    module.setup()
    dataset = module.dataset("val")
    tags = [int(Path(n).stem[-1]) for n in dataset.images.names]
    assert len(tags) == 6
    assert [locate_crop(hwc(dataset[i]["image"]))[0] for i in range(3)] == tags[:3]


def test_training_crops_are_random_and_sometimes_flipped(folder):
    module = folder_module(folder)
    dataset = module.dataset("train")
    torch.manual_seed(0)
    places = [locate_crop(hwc(dataset[index % len(dataset)]["image"])) for index in range(40)]
    assert len({place[1:3] for place in places}) > 20, "crop positions should vary"
    flips = sum(place[3] for place in places)
    assert 5 < flips < 35, "horizontal flips should happen about half the time"


def test_evaluation_is_reproducible_across_modules(photos):
    first, second = photo_module(photos, seed=0), photo_module(photos, seed=0)
    other = photo_module(photos, seed=1)
    for split in ("val", "test"):
        for index in range(len(first.dataset(split))):
            a, b = first.dataset(split)[index], second.dataset(split)[index]
            for key in KEYS:
                assert torch.equal(a[key], b[key]), (split, index, key)
            c = other.dataset(split)[index]
            assert not torch.equal(a["mask"], c["mask"])
            assert not torch.equal(a["damaged"], c["damaged"])


def test_evaluation_samples_are_the_same_in_every_process():
    """Nothing of a sample may hang on Python's per-process string hashing."""
    code = (
        "import hashlib\n"
        "from hydra.utils import instantiate\n"
        "from inpaint.config import compose_config\n"
        "cfg = compose_config('train', ['data.eval_length=4'])\n"
        "data = instantiate(cfg.data, mask=instantiate(cfg.mask))\n"
        "samples = [data.dataset(s)[i] for s in ('val', 'test') for i in range(4)]\n"
        "keys = ('mask', 'damaged')\n"
        "print(hashlib.sha1(b''.join(x[k].numpy().tobytes() for x in samples for k in keys))"
        ".hexdigest())\n"
    )
    printed = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(printed) == 1 and len(printed.pop().strip()) == 40


def test_training_split_is_evaluated_on_seeded_samples_of_its_own_images(photos):
    first, second = photo_module(photos), photo_module(photos)
    dataset = first.evaluation_dataset("train")
    assert len(dataset) == 6  # eval_length, not train_length
    assert dataset.images is first.dataset("train").images
    for index in range(len(dataset)):
        a, b = dataset[index], second.evaluation_dataset("train")[index]
        assert all(torch.equal(a[key], b[key]) for key in KEYS), index
    assert first.evaluation_dataset("test") is first.dataset("test")


def test_evaluation_sample_is_stable_when_read_again(photos):
    module = photo_module(photos)
    dataset = module.dataset("val")
    a, b = dataset[2], dataset[2]
    _ = dataset[3]
    c = dataset[2]
    for key in KEYS:
        assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key])


def test_val_and_test_differ(photos):
    module = photo_module(photos)
    for index in range(6):
        val, test = module.dataset("val")[index], module.dataset("test")[index]
        assert not torch.equal(val["mask"], test["mask"])
        assert not torch.equal(val["damaged"], test["damaged"])


def test_evaluation_samples_differ_by_index(photos):
    module = photo_module(photos)
    masks = [module.dataset("val")[index]["mask"] for index in range(6)]
    assert len({mask.numpy().tobytes() for mask in masks}) == 6


def test_training_samples_vary_between_draws(photos):
    module = photo_module(photos)
    dataset = module.dataset("train")
    a, b = dataset[0], dataset[0]
    assert not torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["image"], b["image"])
    first = next(iter(module.train_dataloader()))
    second = next(iter(module.train_dataloader()))
    assert not torch.equal(first["damaged"], second["damaged"])


def test_training_draws_follow_torch_seed(photos):
    dataset = photo_module(photos).dataset("train")
    torch.manual_seed(123)
    a = dataset[1]
    torch.manual_seed(123)
    b = dataset[1]
    for key in KEYS:
        assert torch.equal(a[key], b[key])


@pytest.mark.parametrize("size", [32, 48])
def test_image_size_override_through_hydra(size):
    overrides = [
        "data=samples",
        "mask=square",
        f"data.image_size={size}",
        "data.train_length=4",
        "data.eval_length=4",
        "data.batch_size=2",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    module = instantiate(cfg.data, mask=instantiate(cfg.mask))
    assert isinstance(module, InpaintDataModule)
    assert module.image_size == size and module.seed == cfg.seed
    module.setup("fit")
    for loader in (module.train_dataloader(), module.val_dataloader()):
        check_batch(next(iter(loader)), 2, size)


@pytest.mark.parametrize("size", [32, 48])
def test_image_size_on_a_folder(folder, size):
    module = folder_module(folder, image_size=size, batch_size=2)
    batch = next(iter(module.val_dataloader()))
    check_batch(batch, 2, size)
    for image in batch["image"]:
        locate_crop(hwc(image))


def test_resize_upscales_small_images(tmp_path):
    """With resize=True a 16 px image is scaled to the image size, not padded."""
    for tag in range(5):
        rgb = np.zeros((16, 16, 3), np.uint8)
        rgb[:, 8:] = 255  # dark left half, bright right half
        rgb[..., 2] = 40 * tag
        assert cv2.imwrite(str(tmp_path / f"small{tag}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    source = ImageFolder(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    module = InpaintDataModule(source, SquareMask(), image_size=48, batch_size=1, resize=True)
    module.setup()
    for split in ("train", "val", "test"):
        sample = module.dataset(split)[0]
        assert sample["image"].shape == (3, 48, 48)
        assert sample["mask"].shape == (1, 48, 48)
    image = hwc(module.dataset("val")[0]["image"])
    assert image[:, :20, 0].max() < 0.05, "left side should be the dark half, scaled"
    assert image[:, 28:, 0].min() > 0.95, "right side should be the bright half, scaled"


def test_resize_keeps_aspect_ratio_and_requested_size(tmp_path):
    """A 12x20 image with its bottom half green and red stripes 2 px wide: scaled by 40/12
    on both axes (not stretched to 40x40, not padded), then cropped to 40x40."""
    rgb = np.zeros((12, 20, 3), np.uint8)
    rgb[6:, :, 1] = 255
    rgb[:, (np.arange(20) // 2) % 2 == 0, 0] = 255
    for tag in range(5):
        rgb[..., 2] = 30 * tag
        assert cv2.imwrite(str(tmp_path / f"wide{tag}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    source = ImageFolder(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    module = InpaintDataModule(source, LineMask(), image_size=40, batch_size=2, resize=True)
    module.setup()
    check_batch(next(iter(module.train_dataloader())), 2, 40)
    image = hwc(module.dataset("val")[0]["image"])
    assert image[:18, :, 1].max() < 0.1 and image[22:, :, 1].min() > 0.9  # 12 rows -> 40
    stripes = image[10, :, 0] > 0.5
    changes = np.count_nonzero(stripes[1:] != stripes[:-1])
    assert 5 <= changes <= 7, f"{changes} stripe edges in 40 px: stripes 6.7 px wide expected"


def test_without_resize_small_images_are_padded_to_size(tmp_path):
    """A 10x14 image in a 24 px sample: its pixels unscaled, the border reflected from them."""
    tiny = np.zeros((10, 14, 3), np.uint8)  # every pixel its own colour, none black
    tiny[..., 0] = 60 + 8 * np.arange(14)[None, :]
    tiny[..., 1] = 60 + 8 * np.arange(10)[:, None]
    for tag in range(5):
        tiny[..., 2] = 10 + 20 * tag
        assert cv2.imwrite(str(tmp_path / f"tiny{tag}.png"), cv2.cvtColor(tiny, cv2.COLOR_RGB2BGR))
    source = ImageFolder(str(tmp_path), val_fraction=0.2, test_fraction=0.2)
    module = InpaintDataModule(source, LineMask(), image_size=24, batch_size=1, resize=False)
    module.setup()
    sample = module.dataset("val")[0]["image"]
    assert sample.shape == (3, 24, 24)
    pixels = np.rint(hwc(sample) * 255).astype(np.uint8)
    original = tiny.copy()
    original[..., 2] = pixels[12, 12, 2]  # the blue tag of whichever image this is
    placed = [
        (top, left)
        for top in range(24 - 10 + 1)
        for left in range(24 - 14 + 1)
        if np.array_equal(pixels[top : top + 10, left : left + 14], original)
    ]
    assert len(placed) == 1, "the image should appear once, at its own size"
    colours = {tuple(p) for p in original.reshape(-1, 3)}
    assert all(tuple(p) in colours for p in pixels.reshape(-1, 3)), "border not reflected"


def test_tiny_image_size_empty_batches_or_no_seed_are_rejected(photos):
    with pytest.raises(ValueError, match="at least 8"):
        InpaintDataModule(photos, LineMask(), image_size=4)
    with pytest.raises(ValueError, match="data.batch_size must be at least 1, got 0"):
        InpaintDataModule(photos, LineMask(), batch_size=0)
    with pytest.raises(ValueError, match=r"data.seed=None: give an integer seed"):
        InpaintDataModule(photos, LineMask(), seed=None)  # seed=null
    with pytest.raises(ValueError, match=r"data.seed=True: give an integer seed"):
        InpaintDataModule(photos, LineMask(), seed=True)  # not 1


def test_sample_photos_train_and_test_are_disjoint(photos):
    train, test = photos.split("train"), photos.split("test")
    assert train.names == SAMPLE_PHOTOS["train"] and test.names == SAMPLE_PHOTOS["test"]
    assert not set(train.names) & set(test.names)
    assert not set(train.names) & set(photos.split("val").names)
    for a in train.images:
        for b in test.images:
            assert a.shape != b.shape or not np.array_equal(a, b)
    for split in ("train", "val", "test"):
        for image in photos.split(split).images:
            assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32
            assert min(image.shape[:2]) >= 64, "photos must be large enough for the default crop"
            assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05


def test_training_flips_are_independent_of_where_the_crop_lands():
    """The flip has its own seed: with one seed for crop and flip, albumentations flipped
    exactly the crops from the upper half of the image."""
    image = coordinate_image(0).astype(np.float32) / 255  # red = x, green = y
    dataset = InpaintingDataset([image], SquareMask(), image_size=32, train=True)
    torch.manual_seed(0)
    flips = {True: [], False: []}
    for index in range(200):
        crop = hwc(dataset[index]["image"])
        upper = crop[0, 0, 1] * 255 / STEP < 16  # top row y of the crop, of 0..32
        flips[bool(upper)].append(crop[0, 0, 0] > crop[0, -1, 0])  # red falls: mirrored
    for half in (True, False):
        assert len(flips[half]) > 40 and 0.3 < np.mean(flips[half]) < 0.7, (half, flips[half])


def test_true_edges_are_those_of_the_clean_image_hole_included(photos):
    """`edge` is the target the edge network learns to draw in the hole: Canny of the clean
    grey image, not of the damaged one, whose noise fill has edges of its own."""
    detector = EdgeDetector(method="opencv")
    module = photo_module(photos, mask=SquareMask(), image_size=64, eval_length=3, edges=detector)
    for index in range(3):
        sample = module.dataset("val")[index]
        gray = cv2.cvtColor(hwc(sample["image"]), cv2.COLOR_RGB2GRAY)
        damaged_gray = cv2.cvtColor(hwc(sample["damaged"]), cv2.COLOR_RGB2GRAY)
        hole = sample["mask"][0].numpy() >= 0.5
        edge = sample["edge"][0].numpy()
        np.testing.assert_array_equal(sample["gray"][0].numpy(), gray)
        np.testing.assert_array_equal(edge, detector.numpy(gray))
        assert edge[hole].sum() > 0, "the true edges run on through the hole"
        assert not np.array_equal(edge, detector.numpy(damaged_gray))
