"""Image sources (one per data set layout) and image file reading, on fixture trees in tmp_path."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from inpaint.data.images import (
    IMAGE_SUFFIXES,
    UnreadableImageError,
    has_colour_profile,
    is_readable_image,
    list_images,
    read_image,
    read_pixels,
    to_float_rgb,
    write_image,
)
from inpaint.data.sources import (
    SPLITS,
    CelebA,
    Cifar10,
    FileImages,
    ImageFolder,
    ParisStreetView,
    SamplePhotos,
)
from tests.conftest import ROOT


def write_bgr(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return path


def tagged_image(tag: int, height: int = 12, width: int = 16) -> np.ndarray:
    """An 8-bit BGR image whose blue channel carries `tag`, so files can be told apart."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = tag
    pixels[..., 1] = np.arange(width, dtype=np.uint8)[None, :]
    pixels[..., 2] = np.arange(height, dtype=np.uint8)[:, None]
    return pixels


def make_folder(root: Path, count: int, suffix: str = ".png", nested: bool = True) -> list[Path]:
    paths = []
    for i in range(count):
        sub = root / f"group{i % 3}" if nested else root
        paths.append(write_bgr(sub / f"img{i:03d}{suffix}", tagged_image(i)))
    return paths


def tag_of(image: np.ndarray) -> int:
    return int(round(float(image[0, 0, 2]) * 255))


def images_of(split) -> list[np.ndarray]:
    """Every image of a split, by index."""
    return [split[i] for i in range(len(split))]


def quiet_split(source, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return source.split(name)


# --- read_image -------------------------------------------------------------------------


def test_read_rgb_png_keeps_channel_order(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[:, :3] = (0, 0, 255)  # red on the left
    bgr[:, 3:] = (255, 0, 0)  # blue on the right
    image = read_image(write_bgr(tmp_path / "rgb.png", bgr))
    assert image.shape == (4, 6, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(image[0, 5], [0.0, 0.0, 1.0])


def test_read_grey_png(tmp_path):
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    image = read_image(write_bgr(tmp_path / "grey.png", grey))
    assert image.shape == (4, 5, 3) and image.dtype == np.float32
    for channel in range(3):
        np.testing.assert_allclose(image[..., channel], grey / 255.0, atol=1e-6)


def test_read_rgba_png_drops_alpha(tmp_path):
    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = 30, 60, 90  # B, G, R
    bgra[..., 3] = np.array([[0, 128, 255]] * 3, np.uint8)
    image = read_image(write_bgr(tmp_path / "rgba.png", bgra))
    assert image.shape == (3, 3, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image, np.broadcast_to([90 / 255, 60 / 255, 30 / 255], (3, 3, 3)))


def test_read_16bit_grey_png(tmp_path):
    values = np.array([[0, 32768, 65535], [257, 16384, 49152]], np.uint16)
    path = write_bgr(tmp_path / "deep.png", values)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    image = read_image(path)
    assert image.shape == (2, 3, 3) and image.dtype == np.float32
    assert image[0, 0, 0] == 0.0
    assert image[0, 2, 0] == 1.0
    assert image[0, 1, 0] == pytest.approx(0.5, abs=1e-4)
    assert image[1, 0, 0] == pytest.approx(1 / 255, abs=1e-6)
    assert image[1, 1, 0] == pytest.approx(0.25, abs=1e-4)
    assert image[1, 2, 0] == pytest.approx(0.75, abs=1e-4)


def test_read_16bit_rgb_png(tmp_path):
    bgr = np.zeros((2, 2, 3), np.uint16)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 65535, 32768, 0
    image = read_image(write_bgr(tmp_path / "deep_rgb.png", bgr))
    assert image.shape == (2, 2, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[0, 0], [0.0, 0.5, 1.0], atol=1e-4)
    assert image.max() == 1.0


def test_read_16bit_rgba_png(tmp_path):
    bgra = np.full((2, 2, 4), 65535, np.uint16)
    bgra[..., 2] = 0  # no red
    image = read_image(write_bgr(tmp_path / "deep_rgba.png", bgra))
    assert image.shape == (2, 2, 3)
    np.testing.assert_array_equal(image[0, 0], [0.0, 1.0, 1.0])


def test_read_jpeg(tmp_path):
    bgr = np.full((16, 16, 3), (40, 120, 200), np.uint8)
    image = read_image(write_bgr(tmp_path / "photo.jpg", bgr))
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image.mean(axis=(0, 1)), [200 / 255, 120 / 255, 40 / 255], atol=0.02)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_turns_every_exif_orientation_upright_as_pil_does(tmp_path, orientation, suffix):
    stored = np.zeros((6, 10, 3), np.uint8)  # every pixel its own colour: any turn shows
    stored[..., 0] = 20 * np.arange(10)[None, :]
    stored[..., 1] = 40 * np.arange(6)[:, None]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{suffix}"
    Image.fromarray(stored).save(path, exif=exif, lossless=True)  # lossless: for WebP
    with Image.open(path) as opened:
        upright = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    assert np.array_equal(read_pixels(path), upright)
    assert (orientation == 1) == np.array_equal(upright, stored)


def test_an_image_past_pils_pixel_limit_is_turned_upright_and_listed_from_its_header(
    tmp_path, monkeypatch
):
    """PIL refuses to open images over its limit (179 MP; here lowered to 100 pixels)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # a quarter turn
    path = tmp_path / "huge.jpg"
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(path, exif=exif)
    assert read_pixels(path).shape == (30, 10, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored
    monkeypatch.setattr(cv2, "imdecode", None)  # listed from its header, not decoded
    assert is_readable_image(path)
    tiff = tmp_path / "huge.tif"  # an 8-bit TIFF with alpha, which PIL decodes
    Image.fromarray(np.full((10, 30, 4), 7, np.uint8)).save(tiff)
    assert read_pixels(tiff).shape == (10, 30, 4)


@pytest.mark.parametrize(
    ("mode", "orientation"), [("RGBA", o) for o in range(1, 5)] + [("LA", o) for o in range(1, 9)]
)
def test_tiff_with_alpha_keeps_its_colour_and_alpha_and_is_turned_once(tmp_path, mode, orientation):
    """OpenCV multiplies an 8-bit TIFF's colour by its alpha; the pixels must come back as
    stored (grey + alpha as RGBA with equal channels, as OpenCV reads such PNGs), upright."""
    rgba = np.zeros((6, 10, 4), np.uint8)  # every pixel its own colour: any turn shows
    rgba[..., 0] = 20 * np.arange(10)[None, :]
    rgba[..., 1] = 40 * np.arange(6)[:, None]
    rgba[..., 2], rgba[..., 3] = 50, 128
    stored = Image.fromarray(rgba).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "alpha.tif", exif=exif)
    upright = stored.convert("RGBA")
    upright.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(upright))
    assert np.array_equal(read_pixels(tmp_path / "alpha.tif"), expected)


def test_rotated_8_bit_rgba_tiff_is_refused_by_name(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((6, 10, 4), np.uint8)).save(tmp_path / "turned.tif", exif=exif)
    with pytest.raises(UnreadableImageError, match=r"turned\.tif: an 8-bit RGBA TIFF .* 6"):
        read_pixels(tmp_path / "turned.tif")


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(1, lambda a: a), (3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, -1))],
)
def test_16_bit_rgba_tiff_keeps_its_depth_and_is_turned_once(tmp_path, orientation, turn):
    rgba = np.zeros((6, 10, 4), np.uint16)
    rgba[..., 0] = 6000 * np.arange(10)[None, :]
    rgba[..., 1] = 9000 * np.arange(6)[:, None]
    rgba[..., 2], rgba[..., 3] = 1000, 40000
    path = tmp_path / "deep.tif"
    tifffile.imwrite(
        path,
        rgba,
        photometric="rgb",
        extrasamples=["unassalpha"],
        extratags=[(0x0112, "H", 1, orientation, True)],
    )
    pixels = read_pixels(path)
    assert pixels.dtype == np.uint16
    assert np.array_equal(pixels, turn(rgba))


def test_float64_tiff_is_read_and_signed_or_32_bit_integers_are_refused(tmp_path):
    colour = np.random.default_rng(0).random((4, 5, 3))
    assert cv2.imwrite(str(tmp_path / "double.tif"), colour)
    pixels = read_pixels(tmp_path / "double.tif")
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(pixels, colour[..., ::-1], atol=1e-6)
    Image.fromarray(np.full((4, 5), 70000, np.int32), mode="I").save(tmp_path / "int32.tif")
    with pytest.raises(UnreadableImageError, match=r"int32\.tif: int32 pixels are not supported"):
        read_pixels(tmp_path / "int32.tif")


def test_read_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(UnreadableImageError, match="corrupt.png"):
        read_image(corrupt)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="empty.png"):
        read_image(empty)
    assert not is_readable_image(corrupt) and not is_readable_image(empty)


def profile_bytes(space: str, description: bool = True) -> bytes:
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes())
    if not description:  # rename the 'desc' tag of the ICC tag table
        for entry in range(int.from_bytes(data[128:132], "big")):
            start = 132 + 12 * entry
            if data[start : start + 4] == b"desc":
                data[start : start + 4] = b"zzzz"
    assert ImageCms.ImageCmsProfile(io.BytesIO(bytes(data))).profile
    return bytes(data)


def test_colour_profiles_other_than_srgb_are_found(tmp_path):
    pixels = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    cases = {"none": None, "srgb": profile_bytes("sRGB"), "lab": profile_bytes("LAB")}
    cases["nameless"] = profile_bytes("sRGB", description=False)  # unknown: maybe not sRGB
    found = {}
    for name, profile in cases.items():
        pixels.save(tmp_path / f"{name}.png", **({"icc_profile": profile} if profile else {}))
        found[name] = has_colour_profile(tmp_path / f"{name}.png")
    assert found == {"none": False, "srgb": False, "lab": True, "nameless": True}


def test_to_float_rgb_handles_depths_and_channels():
    assert to_float_rgb(np.full((2, 2), 255, np.uint8)).tolist() == np.ones((2, 2, 3)).tolist()
    assert to_float_rgb(np.full((2, 2, 1), 65535, np.uint16)).max() == 1.0
    grey_alpha = np.stack([np.full((2, 2), 51, np.uint8), np.zeros((2, 2), np.uint8)], axis=-1)
    np.testing.assert_allclose(to_float_rgb(grey_alpha), np.full((2, 2, 3), 0.2), atol=1e-6)
    floats = to_float_rgb(np.array([[[-0.5, 0.5, 1.5]]], np.float64))
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, [[[0.0, 0.5, 1.0]]])


def test_write_then_read_round_trip(tmp_path):
    image = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    write_image(tmp_path / "sub" / "out.png", image)
    back = read_image(tmp_path / "sub" / "out.png")
    np.testing.assert_allclose(back, image, atol=0.5 / 255 + 1e-6)


def test_list_images_is_sorted_recursive_and_filters_suffixes(tmp_path):
    make_folder(tmp_path, 6)
    (tmp_path / "notes.txt").write_text("not an image")
    write_bgr(tmp_path / "UPPER.PNG", tagged_image(99))
    listed = list_images(tmp_path)
    assert len(listed) == 7
    assert listed == sorted(listed)
    assert all(path.suffix.lower() == ".png" for path in listed)


def test_the_readme_names_the_suffixes_a_folder_of_images_is_read_by():
    readme = (ROOT / "README.md").read_text()
    assert f"(`{' '.join(IMAGE_SUFFIXES)}`," in readme


def test_list_images_leaves_out_hidden_files_and_folders(tmp_path):
    """Notebook checkpoints and macOS's ._ files are no images of the set; a hidden root is."""
    root = tmp_path / ".photos"
    write_bgr(root / "a.png", tagged_image(1))
    write_bgr(root / ".hidden.png", tagged_image(2))
    write_bgr(root / ".ipynb_checkpoints" / "a-checkpoint.png", tagged_image(3))
    (root / "._a.jpg").write_bytes(b"AppleDouble")
    assert list_images(root) == [root / "a.png"]


def test_list_images_follows_linked_folders_once(tmp_path):
    images = tmp_path / "images"
    make_folder(tmp_path / "elsewhere", 3, nested=False)
    make_folder(images, 2, nested=False)
    (images / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (images / "linked_again").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (images / "loop").symlink_to(images, target_is_directory=True)
    listed = list_images(images)
    assert len(listed) == 5
    assert sorted({p.resolve().parent.name for p in listed}) == ["elsewhere", "images"]


def test_listed_files_that_are_missing_are_counted_and_named(tmp_path):
    make_folder(tmp_path, 1, nested=False)
    paths = [tmp_path / "img000.png", tmp_path / "gone1.png", tmp_path / "gone2.png"]
    assert not is_readable_image(tmp_path / "gone1.png")
    with pytest.warns(
        UserWarning, match=r"skipped 2 unreadable of 3 .*\(2 missing, e\.g\. .*gone1"
    ):
        assert len(FileImages(paths, "listed")) == 1
    with pytest.raises(FileNotFoundError, match=r"among 2 files of listed \(2 missing"):
        FileImages(paths[1:], "listed")


def test_folder_keeps_float_tiff_that_read_image_decodes(tmp_path):
    path = tmp_path / "float.tif"
    assert cv2.imwrite(str(path), np.full((8, 8, 3), 0.25, np.float32))
    np.testing.assert_allclose(read_image(path), 0.25)
    assert is_readable_image(path)


def test_file_images_index_past_the_end_raises(tmp_path):
    make_folder(tmp_path, 3, nested=False)
    train = ImageFolder(str(tmp_path), val_fraction=0.0, test_fraction=0.0).split("train")
    with pytest.raises(IndexError):
        train[len(train)]


# --- ImageFolder ------------------------------------------------------------------------


def test_image_folder_seeded_split_sizes_and_disjointness(tmp_path):
    paths = make_folder(tmp_path / "images", 20)
    source = ImageFolder(
        str(tmp_path / "images"), val_fraction=0.2, test_fraction=0.1, split_seed=3
    )
    splits = {name: quiet_split(source, name) for name in SPLITS}
    assert [len(splits[name]) for name in SPLITS] == [14, 4, 2]
    names = {name: set(splits[name].names) for name in SPLITS}
    assert not names["train"] & names["val"]
    assert not names["train"] & names["test"]
    assert not names["val"] & names["test"]
    assert names["train"] | names["val"] | names["test"] == {str(p) for p in paths}
    for name in SPLITS:
        assert all(tag_of(image) in range(20) for image in images_of(splits[name]))
        assert sorted(tag_of(image) for image in images_of(splits[name])) == sorted(
            int(Path(n).stem[3:]) for n in splits[name].names
        )


def test_image_folder_split_depends_only_on_seed(tmp_path):
    make_folder(tmp_path, 30)

    def split_names(seed):
        source = ImageFolder(str(tmp_path), val_fraction=0.2, test_fraction=0.2, split_seed=seed)
        return {name: quiet_split(source, name).names for name in SPLITS}

    assert split_names(5) == split_names(5)
    assert split_names(5)["test"] != split_names(6)["test"]
    assert split_names(5)["val"] != split_names(6)["val"]


def test_image_folder_images_match_their_files(tmp_path):
    make_folder(tmp_path, 5)
    train = quiet_split(ImageFolder(str(tmp_path), val_fraction=0.0, test_fraction=0.0), "train")
    assert len(train) == 5
    for path, image in zip(train.names, images_of(train), strict=True):
        np.testing.assert_array_equal(image, read_image(path))
        assert image.shape == (12, 16, 3) and image.dtype == np.float32


def test_image_folder_split_files(tmp_path):
    make_folder(tmp_path / "data", 6, nested=False)
    lists = {
        "train": ["img000.png", "img001.png", "img002.png"],
        "val": ["img003.png"],
        "test": ["img004.png", "img005.png"],
    }
    files = {}
    for name, lines in lists.items():
        files[name] = str(tmp_path / f"{name}.txt")
        Path(files[name]).write_text("\n".join(lines) + "\n\n")
    source = ImageFolder(str(tmp_path / "data"), split_files=files)
    for name, lines in lists.items():
        split = quiet_split(source, name)
        assert split.names == [str(tmp_path / "data" / line) for line in lines]
        assert [tag_of(image) for image in images_of(split)] == [int(line[3:6]) for line in lines]


def write_split_files(folder: Path, lists: dict[str, str]) -> dict[str, str]:
    """One text file per split, of the listed lines; the split_files option naming them."""
    files = {name: folder / f"{name}.txt" for name in lists}
    for name, path in files.items():
        path.write_text(lists[name] + "\n")
    return {name: str(path) for name, path in files.items()}


def test_image_folder_split_files_must_not_share_images(tmp_path):
    make_folder(tmp_path / "data", 4, nested=False)
    lists = {"train": "img000.png\nimg001.png", "val": "img002.png", "test": "./img001.png"}
    with pytest.raises(ValueError, match=r"train .* and test .* share 1 image\(s\): img001\.png"):
        ImageFolder(str(tmp_path / "data"), split_files=write_split_files(tmp_path, lists))


def test_image_folder_split_files_sharing_an_image_outside_the_root_are_refused(tmp_path):
    make_folder(tmp_path / "data", 2, nested=False)
    make_folder(tmp_path / "other", 1, nested=False)
    lists = {"train": "img000.png\n../other/img000.png", "val": "img001.png"}
    lists["test"] = str(tmp_path / "other" / "img000.png")
    with pytest.raises(ValueError, match=r"share 1 image\(s\): \.\./other/img000\.png"):
        ImageFolder(str(tmp_path / "data"), split_files=write_split_files(tmp_path, lists))


def test_image_folder_split_files_need_every_split(tmp_path):
    make_folder(tmp_path / "data", 2, nested=False)
    (tmp_path / "train.txt").write_text("img000.png\n")
    with pytest.raises(KeyError, match="'val'"):
        ImageFolder(str(tmp_path / "data"), split_files={"train": str(tmp_path / "train.txt")})


def test_image_folder_missing_split_file_names_it(tmp_path):
    make_folder(tmp_path / "data", 2, nested=False)
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        ImageFolder(
            str(tmp_path / "data"),
            split_files={"train": str(missing), "val": str(missing), "test": str(missing)},
        )


def test_image_folder_missing_root_names_the_path(tmp_path):
    root = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder") as excinfo:
        ImageFolder(str(root))
    assert str(root) in str(excinfo.value)


def test_image_folder_without_images(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="no image files") as excinfo:
        ImageFolder(str(tmp_path))
    assert str(tmp_path) in str(excinfo.value)


def test_image_folder_skips_a_corrupt_file_with_one_warning(tmp_path):
    make_folder(tmp_path, 5)
    corrupt = tmp_path / "group0" / "broken.png"
    corrupt.write_bytes(np.random.default_rng(0).bytes(256))
    source = ImageFolder(str(tmp_path), val_fraction=0.0, test_fraction=0.0)
    with pytest.warns(UserWarning) as record:
        train = source.split("train")
    messages = [str(w.message) for w in record]
    assert len(messages) == 1, messages
    assert "skipped 1 unreadable of 6" in messages[0]
    assert len(train) == 5
    assert str(corrupt) not in train.names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(tag_of(image) for image in images_of(train)) == list(range(5))


def test_image_folder_all_corrupt_raises(tmp_path):
    for i in range(3):
        (tmp_path / f"bad{i}.png").write_bytes(np.random.default_rng(i).bytes(128))
    source = ImageFolder(str(tmp_path), val_fraction=0.0, test_fraction=0.0)
    with pytest.raises(FileNotFoundError, match="no readable image among 3 files"):
        source.split("train")


def test_file_that_passes_the_header_check_but_fails_to_decode_is_replaced(tmp_path):
    make_folder(tmp_path, 3, nested=False)
    good = (tmp_path / "img001.png").read_bytes()
    (tmp_path / "img001.png").write_bytes(good[:60])  # header intact, data truncated
    train = ImageFolder(str(tmp_path), val_fraction=0.0, test_fraction=0.0).split("train")
    assert len(train) == 3
    with pytest.warns(UserWarning, match="img001.png"):
        image = train[1]
    assert tag_of(image) == 2, "the next image stands in for the unreadable one"


# --- CIFAR-10 ---------------------------------------------------------------------------


def cifar_batch(path: Path, start: int, count: int) -> None:
    """Image k has red = k, green = 100 + k, blue = 200 - k at every pixel (k = start...)."""
    tags = np.arange(start, start + count)
    planes = [np.repeat(t[:, None], 1024, axis=1) for t in (tags, 100 + tags, 200 - tags)]
    data = np.concatenate(planes, axis=1).astype(np.uint8)
    assert data.shape == (count, 3072)
    batch = {b"data": data, b"labels": [int(t) % 10 for t in tags], b"batch_label": b"fake"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(batch, handle)


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    for i in range(1, 6):
        cifar_batch(folder / f"data_batch_{i}", start=(i - 1) * 4, count=4)
    cifar_batch(folder / "test_batch", start=50, count=3)
    return tmp_path / "cifar10"


def cifar_tag(image: np.ndarray) -> int:
    return int(round(float(image[0, 0, 0]) * 255))


def test_cifar10_splits(cifar_root):
    source = Cifar10(str(cifar_root), val_size=6, split_seed=0)
    train, val, test = (source.split(name) for name in SPLITS)
    assert (len(train), len(val), len(test)) == (14, 6, 3)
    for split in (train, val, test):
        for image in split:
            assert image.shape == (32, 32, 3) and image.dtype == np.float32
            assert 0.0 <= image.min() and image.max() <= 1.0
    train_tags = {cifar_tag(image) for image in train}
    val_tags = {cifar_tag(image) for image in val}
    assert not train_tags & val_tags
    assert train_tags | val_tags == set(range(20))
    assert sorted(cifar_tag(image) for image in test) == [50, 51, 52]


def test_cifar10_pixels_are_channel_planes(cifar_root):
    """The 3072 bytes of a row are the red, green and blue 32x32 planes in that order."""
    test = Cifar10(str(cifar_root), val_size=2).split("test")
    for k, image in zip((50, 51, 52), test, strict=True):
        expected = np.array([k, 100 + k, 200 - k], np.float32) / 255
        np.testing.assert_allclose(image, np.broadcast_to(expected, (32, 32, 3)), atol=1e-6)


def test_cifar10_row_major_pixel_order(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    ramp = np.arange(1024) % 256
    data = np.concatenate([ramp, np.zeros(1024), np.full(1024, 7)]).astype(np.uint8)[None]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": [0]}, handle)
    image = Cifar10(str(tmp_path), val_size=0).split("test")[0]
    np.testing.assert_allclose(image[0, :, 0] * 255, np.arange(32), atol=1e-4)
    np.testing.assert_allclose(image[1, 0, 0] * 255, 32, atol=1e-4)
    assert np.all(image[..., 1] == 0)
    np.testing.assert_allclose(image[..., 2] * 255, 7, atol=1e-4)


def test_cifar10_batches_directly_under_root(cifar_root):
    direct = Cifar10(str(cifar_root / "cifar-10-batches-py"), val_size=6)
    nested = Cifar10(str(cifar_root), val_size=6)
    for name in SPLITS:
        a, b = direct.split(name), nested.split(name)
        assert len(a) == len(b)
        assert [cifar_tag(x) for x in a] == [cifar_tag(x) for x in b]


def test_cifar10_val_split_is_seeded(cifar_root):
    def val_tags(seed):
        return [cifar_tag(image) for image in Cifar10(str(cifar_root), 6, seed).split("val")]

    assert val_tags(1) == val_tags(1)
    assert val_tags(1) != val_tags(2)


def test_cifar10_missing_root_names_path_and_layout(tmp_path):
    root = tmp_path / "no_cifar_here"
    with pytest.raises(FileNotFoundError) as excinfo:
        Cifar10(str(root))
    message = str(excinfo.value)
    assert str(root) in message
    assert "cifar-10-batches-py" in message and "data_batch_1" in message


def test_cifar10_missing_batch_names_it(cifar_root):
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        Cifar10(str(cifar_root))


def test_cifar10_rejects_a_non_cifar_pickle(cifar_root):
    with (cifar_root / "cifar-10-batches-py" / "test_batch").open("wb") as handle:
        pickle.dump({b"pixels": np.zeros((1, 3072), np.uint8)}, handle)
    with pytest.raises(ValueError, match="test_batch.*not a CIFAR-10"):
        Cifar10(str(cifar_root))


@pytest.mark.parametrize("kept", [1000, 0])  # an interrupted extraction; an empty file
def test_cifar10_truncated_batch_names_the_file_and_layout(cifar_root, kept):
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:kept])
    with pytest.raises(ValueError, match=r"data_batch_3 is not a readable CIFAR-10 .*layout"):
        Cifar10(str(cifar_root))


# --- CelebA -----------------------------------------------------------------------------


@pytest.fixture
def celeba_root(tmp_path) -> Path:
    root = tmp_path / "celeba"
    lines = []
    for i, part in enumerate([0, 0, 0, 1, 1, 2, 0, 2]):
        bgr = np.full((218, 178, 3), 255, np.uint8)  # white bands above and below the crop
        bgr[20:198] = (20 * i, 0, 0)  # tagged blue, black elsewhere
        name = f"{i + 1:06d}.jpg"
        assert cv2.imwrite(
            str(_mkdir(root / "img_align_celeba") / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 100]
        )
        lines.append(f"{name} {part}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_celeba_split_by_partition(celeba_root):
    source = CelebA(str(celeba_root))
    sizes = {name: len(quiet_split(source, name)) for name in SPLITS}
    assert sizes == {"train": 4, "val": 2, "test": 2}
    names = {name: [Path(n).name for n in quiet_split(source, name).names] for name in SPLITS}
    assert names["val"] == ["000004.jpg", "000005.jpg"]
    assert names["test"] == ["000006.jpg", "000008.jpg"]


def test_celeba_split_without_images_names_the_partition_file(celeba_root):
    partition = celeba_root / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace(" 1\n", " 0\n"))  # no val lines
    with pytest.raises(FileNotFoundError, match=r"CelebA val split \('1' lines of .*list_eval"):
        CelebA(str(celeba_root)).split("val")


def test_celeba_center_crop(celeba_root):
    source = CelebA(str(celeba_root))
    for image in images_of(quiet_split(source, "train")):
        assert image.shape == (178, 178, 3) and image.dtype == np.float32
        # The white bands (rows 0-19 and 198-217) are cropped away.
        assert image[:, :, :2].max() < 0.25, "the crop should hold only the dark middle"
    uncropped = CelebA(str(celeba_root), center_crop=None).split("train")[0]
    assert uncropped.shape == (218, 178, 3)
    assert uncropped[:5, :, :2].min() > 0.75 and uncropped[-5:, :, :2].min() > 0.75
    small = CelebA(str(celeba_root), center_crop=100).split("train")[0]
    assert small.shape == (100, 100, 3)
    np.testing.assert_array_equal(small, uncropped[59:159, 39:139])


def test_celeba_malformed_partition_line_names_file_and_line(celeba_root):
    partition = celeba_root / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    lines[2] = "000003.jpg 7"
    partition.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt:3: expected") as excinfo:
        CelebA(str(celeba_root))
    assert "000003.jpg 7" in str(excinfo.value)
    lines[2] = "000003.jpg"
    partition.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt:3:"):
        CelebA(str(celeba_root))


def test_celeba_missing_parts_name_the_layout(tmp_path, celeba_root):
    with pytest.raises(FileNotFoundError, match="img_align_celeba"):
        CelebA(str(tmp_path / "elsewhere"))
    (celeba_root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        CelebA(str(celeba_root))


# --- Paris StreetView -------------------------------------------------------------------


@pytest.fixture
def paris_root(tmp_path) -> Path:
    root = tmp_path / "paris"
    for i in range(8):
        write_bgr(root / "paris_train_original" / f"train{i:02d}.png", tagged_image(i))
    for i in range(3):
        write_bgr(root / "paris_eval_gt" / f"{i:03d}_im.png", tagged_image(100 + i))
    return root


def test_paris_street_view_splits(paris_root):
    source = ParisStreetView(str(paris_root), val_size=3, split_seed=0)
    train, val, test = (quiet_split(source, name) for name in SPLITS)
    assert (len(train), len(val), len(test)) == (5, 3, 3)
    train_tags = {tag_of(image) for image in images_of(train)}
    val_tags = {tag_of(image) for image in images_of(val)}
    assert not train_tags & val_tags and train_tags | val_tags == set(range(8))
    assert sorted(tag_of(image) for image in images_of(test)) == [100, 101, 102]


def test_paris_street_view_val_is_at_most_half_the_training_photos(paris_root):
    source = ParisStreetView(str(paris_root))  # val_size 100 by default
    assert len(quiet_split(source, "val")) == 4
    assert len(quiet_split(source, "train")) == 4


def test_paris_street_view_missing_folder_names_the_layout(paris_root):
    for path in (paris_root / "paris_eval_gt").iterdir():
        path.unlink()
    (paris_root / "paris_eval_gt").rmdir()
    with pytest.raises(FileNotFoundError, match="paris_eval_gt"):
        ParisStreetView(str(paris_root))


def test_paris_street_view_with_one_training_photo_names_its_folder(paris_root):
    for path in sorted((paris_root / "paris_train_original").iterdir())[2:]:
        path.unlink()
    source = ParisStreetView(str(paris_root))  # two: one to train on, one to validate
    assert len(quiet_split(source, "train")) == len(quiet_split(source, "val")) == 1
    next((paris_root / "paris_train_original").iterdir()).unlink()
    with pytest.raises(FileNotFoundError, match=r"paris_train_original holds 1 images"):
        ParisStreetView(str(paris_root))


# --- SamplePhotos -----------------------------------------------------------------------


def test_sample_photos_reject_overlap():
    photos = {"train": ["coffee.png"], "val": ["astronaut.png"], "test": ["coffee.png"]}
    with pytest.raises(ValueError, match="coffee.png"):
        SamplePhotos(photos)


def test_small_folder_gets_one_image_per_split_and_too_small_is_a_clear_error(tmp_path):
    make_folder(tmp_path / "five", 5)
    folder = ImageFolder(str(tmp_path / "five"))
    sizes = {name: len(quiet_split(folder, name)) for name in ("train", "val", "test")}
    assert sizes == {"train": 3, "val": 1, "test": 1}
    make_folder(tmp_path / "two", 2)
    with pytest.raises(ValueError, match="2 images cannot be split"):
        ImageFolder(str(tmp_path / "two"))
