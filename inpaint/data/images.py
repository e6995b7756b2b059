"""Image files in, float RGB arrays out: the one place pixel formats are converted."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class UnreadableImageError(ValueError):
    """Raised when a file exists but cannot be decoded as an image."""


def to_float_rgb(pixels: np.ndarray) -> np.ndarray:
    """Convert grey, RGB or RGBA pixels of any integer or float depth to float32 RGB in [0, 1].

    Alpha is dropped: training images are opaque by convention.
    """
    if np.issubdtype(pixels.dtype, np.integer):
        scaled = pixels.astype(np.float32) / np.iinfo(pixels.dtype).max
    else:
        scaled = np.clip(pixels.astype(np.float32), 0.0, 1.0)
    if scaled.ndim == 2:
        scaled = scaled[:, :, None]
    channels = scaled.shape[2]
    if channels == 1:
        scaled = np.repeat(scaled, 3, axis=2)
    elif channels == 2:  # grey + alpha
        scaled = np.repeat(scaled[:, :, :1], 3, axis=2)
    elif channels >= 4:
        scaled = scaled[:, :, :3]
    return np.ascontiguousarray(scaled)


# EXIF orientation tag value -> how to turn the stored pixels upright (as PIL's exif_transpose).
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
EXIF_ORIENTATION = 0x0112
TIFF_BITS_PER_SAMPLE = 258


@dataclass(frozen=True)
class Header:
    """What PIL tells of an image file without decoding it (empty when PIL cannot open it)."""

    format: str = ""
    mode: str = ""
    orientation: int = 1  # EXIF; 1 = upright


@contextmanager
def pil_open(path: str | Path) -> Iterator[Image.Image]:
    """The file opened by PIL (for its header, or an 8-bit TIFF with alpha), without PIL's
    decompression-bomb limit of 179 MP: OpenCV, which decodes every other file, takes up to
    1 Gpx, and a huge photo keeps its EXIF orientation and is listed without being decoded."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as opened:
            yield opened
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def has_colour_profile(path: str | Path) -> bool:
    """Whether the file embeds an ICC profile other than sRGB (Adobe RGB, a phone's Display
    P3), which the PNGs written here do not carry."""
    try:
        with pil_open(path) as opened:
            icc = opened.info.get("icc_profile")
        if not icc:
            return False
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile
        return "srgb" not in (profile.profile_description or "").lower()
    except (OSError, ValueError, ImageCms.PyCMSError):
        return False


def read_header(path: Path) -> Header:
    try:
        with pil_open(path) as opened:
            orientation = int(opened.getexif().get(EXIF_ORIENTATION, 1))
            return Header(opened.format or "", opened.mode, orientation)
    except (OSError, ValueError):
        return Header()


def _decode(path: Path, header: Header) -> tuple[np.ndarray, int]:
    """Stored pixels (grey, RGB or RGBA order) and the orientation still to apply.

    8-bit TIFFs with alpha are read by PIL, as OpenCV multiplies their colour by the alpha;
    16-bit ones by OpenCV, as PIL reduces them to 8 bits. OpenCV's and PIL's TIFF decoders
    apply the orientation themselves, OpenCV's other decoders do not.
    """
    if header.format == "TIFF" and header.mode in ("RGBA", "LA"):
        with pil_open(path) as opened:
            if max(opened.tag_v2.get(TIFF_BITS_PER_SAMPLE, (8,))) <= 8:
                if header.mode == "RGBA" and header.orientation >= 5:
                    raise UnreadableImageError(
                        f"{path}: an 8-bit RGBA TIFF with EXIF orientation {header.orientation}"
                        " (turned by 90 degrees) cannot be read faithfully (PIL mixes up its"
                        " pixels, OpenCV multiplies its colour by the alpha); save it upright"
                    )
                return np.asarray(opened.convert("RGBA")), 1
    data = np.fromfile(str(path), dtype=np.uint8)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if pixels is None:
        raise UnreadableImageError(f"cannot decode image file: {path}")
    if pixels.dtype == np.float64:
        pixels = pixels.astype(np.float32)
    if pixels.dtype not in (np.uint8, np.uint16, np.float32):
        raise UnreadableImageError(
            f"{path}: {pixels.dtype} pixels are not supported (8- or 16-bit unsigned, or float)"
        )
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.ndim == 3:
        pixels = cv2.cvtColor(
            pixels, cv2.COLOR_BGRA2RGBA if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
        )
    return pixels, 1 if header.format == "TIFF" else header.orientation


def read_pixels(path: str | Path) -> np.ndarray:
    """An image file's pixels as stored, turned upright by its EXIF orientation.

    (H, W) grey or (H, W, C) RGB/RGBA (C = 3 or 4, alpha kept), in the file's own depth
    (uint8, uint16 or float32).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    pixels, orientation = _decode(path, read_header(path))
    turn = _ORIENT.get(orientation)
    return np.ascontiguousarray(turn(pixels)) if turn else pixels


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as float32 RGB (H, W, 3) in [0, 1]; 8- and 16-bit, grey, RGB, RGBA."""
    return to_float_rgb(read_pixels(path))


def is_readable_image(path: str | Path) -> bool:
    """Cheap check that a file is an image, for scanning large folders: PIL reads only the
    header; files PIL cannot open (float TIFF, say) are decoded by OpenCV instead."""
    if not Path(path).is_file():
        return False
    try:
        with pil_open(path) as opened:
            return opened.size[0] > 0 and opened.size[1] > 0
    except (OSError, ValueError):
        pass
    data = np.fromfile(str(path), dtype=np.uint8)
    return data.size > 0 and cv2.imdecode(data, cv2.IMREAD_UNCHANGED) is not None


def list_images(root: str | Path, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """All image files below `root` but hidden ones, sorted, so splits do not depend on the
    file system's order.

    Files at or below a path of `exclude` that lies inside `root` (a results or mask folder,
    or a mask file, kept among the images) are left out; an `exclude` that is `root` itself
    or lies elsewhere is ignored.
    """
    root = Path(root)
    inner = [
        folder.resolve()
        for folder in map(Path, exclude)
        if folder.resolve() != root.resolve() and folder.resolve().is_relative_to(root.resolve())
    ]
    return sorted(
        p
        for p in _files_below(root)
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(p.resolve().is_relative_to(folder) for folder in inner)
    )


def _files_below(root: Path) -> Iterable[Path]:
    """Every file below `root`, through linked folders too (each real folder once), but for
    hidden ones: names that start with a dot (.ipynb_checkpoints, macOS's ._ files)."""
    seen = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()  # a link back up the tree, or a second link to one folder
            continue
        seen.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        yield from (Path(folder) / name for name in files if not name.startswith("."))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] as 8-bit ones (W&B, for one, casts floats without scaling)."""
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a float RGB (H, W, 3) or grey (H, W) array in [0, 1] as an 8-bit image file."""
    write_pixels(path, to_uint8(image))


def write_pixels(path: str | Path, pixels: np.ndarray) -> None:
    """Write grey (H, W), RGB or RGBA (H, W, 3|4) pixels of the array's own depth."""
    if pixels.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        pixels = cv2.cvtColor(pixels, code)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"cannot write image file: {path}")
