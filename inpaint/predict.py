"""Inpaint photos of any size with a blind, ipn or unet checkpoint:

    python -m inpaint.predict ckpt_path=CKPT input=FILE_OR_DIR output=DIR [mask=FILE_OR_DIR]

Without `mask` a blind model predicts the hole, a U-Net repaints the whole image, and an IPN
or a U-Net trained with the mask as input refuses. `mask` is a file for a single input file,
or a folder whose masks are matched to the images by relative path (`MaskFiles`); white is
the hole, black with `mask_invert=true`.

What is written:
- Only the hole changes: each result is the input's own pixels with the hole pixels replaced, so
  pixels the mask leaves intact are byte for byte the input's. The hole is where the given mask
  is above 0 (there the result is the network's), or where the predicted one is at least
  `Inpainter.intact_below` (there the paint is blended in by the predicted mask).
- The image keeps its size, its upright orientation (EXIF applied), its channels (grey as grey,
  RGBA with the alpha channel unchanged; a grey + alpha PNG, which OpenCV reads as RGBA, and a
  colour file whose channels are all equal are painted grey) and its depth (8 or 16 bit; float
  images become 16-bit).
- Names: `output/<relative path>` with the suffix `.png`, lossless so intact pixels stay exact.
  PNG inputs keep their name; another input whose `.png` name is taken (a.jpg beside a.png)
  gets its full name plus `.png` (a.jpg.png). `save_mask` and `save_edges` write 8-bit grey PNGs
  of the same names under `output/masks/` and `output/edges/`.
- Images longer than `max_side` are inpainted at reduced scale: area-downscaled so the longer
  side is `max_side` (a given mask makes every reduced pixel it touches a hole), the painted
  image upscaled bicubically to full size and used only in the full-size hole (the given mask,
  or the upscaled predicted one).
- Nothing is overwritten: an output that is an input file (image or mask) is refused up front,
  and so are existing outputs unless `overwrite=true`. This run's output folder inside the
  input folder is left out of the input search (an earlier run's other output folder is not).
- An image that cannot be read, or whose mask is missing or of another size, is logged and
  skipped (one whose result, mask or edges cannot be written leaves none of them, and with
  `overwrite=true` an earlier run's are removed); the rest are written, and the command
  exits with status 1 after a summary.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from inpaint.config import logged_job
from inpaint.data.images import (
    has_colour_profile,
    list_images,
    read_pixels,
    to_float_rgb,
    write_image,
    write_pixels,
)
from inpaint.data.mask_files import MaskFiles, check_mask_size, read_mask
from inpaint.devices import flush_denormals
from inpaint.inference import Inpainter, blend_by_mask

log = logging.getLogger(__name__)

USAGE = "python -m inpaint.predict ckpt_path=CKPT input=FILE_OR_DIR output=DIR [mask=FILE_OR_DIR]"
# Problems of one image (unreadable, no mask, mask of another size, cannot write): it is
# reported and the others go on.
IMAGE_ERRORS = (OSError, ValueError, cv2.error)
# A batch the network cannot run: torch raises RuntimeError when memory runs out (on the GPU
# torch.OutOfMemoryError, a RuntimeError too); its images are reported, the others go on.
BATCH_ERRORS = (*IMAGE_ERRORS, RuntimeError)


@dataclass
class Job:
    """One input image and the name its results take below `output`."""

    source: Path
    relative: Path  # below the input folder; the file name for a single input file
    name: Path


@dataclass
class Loaded:
    job: Job
    raw: np.ndarray  # the upright pixels as stored, written back outside the hole
    image: np.ndarray  # float RGB (H, W, 3) in [0, 1]
    mask: np.ndarray | None  # the given mask (H, W), 1 = hole


@dataclass
class Painted:
    """One image's results at its full size."""

    image: np.ndarray  # float RGB (H, W, 3), the result wherever `hole` is set
    hole: np.ndarray  # bool (H, W): the pixels that change
    mask: np.ndarray  # float (H, W): given or predicted; all ones for a U-Net given none
    edges: np.ndarray | None


@dataclass
class PredictReport:
    written: list[Path] = field(default_factory=list)  # result images
    failed: dict[Path, str] = field(default_factory=dict)  # input image -> reason
    network_failed: bool = False  # on a batch: its error's traceback is logged


def check_config(cfg: DictConfig) -> tuple[Path, Path]:
    """Refuse a config that cannot work before anything is loaded; the input and output paths."""
    for key in ("ckpt_path", "input", "output"):
        if OmegaConf.is_missing(cfg, key) or not cfg[key]:
            raise ValueError(f"{key} is required: {USAGE}")
    if OmegaConf.is_config(cfg.mask):  # `+mask.invert=true`, as Hydra suggests
        raise ValueError(
            f"mask must be a file or folder path, got {OmegaConf.to_container(cfg.mask)}: "
            "here masks with black holes take mask_invert=true (inpaint.evaluate's mask.invert)"
        )
    for key in ("ckpt_path", "input", "output", "mask"):
        if isinstance(cfg[key], int | float) and not isinstance(cfg[key], bool):
            cfg[key] = str(cfg[key])  # a folder named 2024, which Hydra reads as a number
    for key in ("ckpt_path", "input", "mask"):
        if cfg[key] and not Path(cfg[key]).exists():
            raise FileNotFoundError(f"{key}={cfg[key]} does not exist")
    source = Path(cfg.input)
    if cfg.mask and Path(cfg.mask).is_file() and source.is_dir():
        raise ValueError(
            f"mask={cfg.mask} is one file but input={source} is a folder: "
            "give a folder of masks named like the images"
        )
    images_folder = (source if source.is_dir() else source.parent).resolve()
    if cfg.mask and Path(cfg.mask).resolve() == images_folder:
        raise ValueError(
            f"mask={cfg.mask} is the folder of the input images: each image would be its own "
            "mask; keep the masks in a folder of their own"
        )
    if Path(cfg.output).resolve() == images_folder:
        raise ValueError(
            f"output={cfg.output} is the folder of the input images: the results would lie "
            "among them (a later run would take them for inputs); choose another folder"
        )
    if Path(cfg.output).exists() and not Path(cfg.output).is_dir():
        raise NotADirectoryError(
            f"output={cfg.output} is a file: results are written into a folder; give its path"
        )
    if cfg.batch_size < 1 or cfg.max_side < 1:
        raise ValueError(
            f"batch_size and max_side must be >= 1, got {cfg.batch_size}, {cfg.max_side}"
        )
    return source, Path(cfg.output)


def output_names(relatives: list[Path]) -> list[Path]:
    """Each input's output name: PNG inputs keep theirs, the others take the suffix `.png`, or
    add it to their full name where that is taken (a.jpg beside a.png gives a.jpg.png)."""
    taken = {relative for relative in relatives if relative.suffix == ".png"}
    names = []
    for relative in relatives:
        name = relative.with_suffix(".png")
        if relative.suffix != ".png":
            if name in taken:
                name = Path(f"{relative}.png")
            while name in taken:
                name = Path(f"{name}.png")
            taken.add(name)
        names.append(name)
    return names


def plan(source: Path, output: Path, masks: str | None = None) -> list[Job]:
    """The input images, sorted, with their output names. Output and mask folders inside the
    input folder are not searched: earlier results and masks are not taken for inputs."""
    if source.is_file():
        files, relatives = [source], [Path(source.name)]
    else:
        files = list_images(source, exclude=[output, *([masks] if masks else [])])
        relatives = [path.relative_to(source) for path in files]
    if not files:
        raise FileNotFoundError(f"no image files in input={source}")
    return [Job(*row) for row in zip(files, relatives, output_names(relatives), strict=True)]


def targets(job: Job, output: Path, cfg: DictConfig) -> list[Path]:
    """Every file written for one job."""
    extras = [
        name for name, wanted in (("masks", cfg.save_mask), ("edges", cfg.save_edges)) if wanted
    ]
    return [output / job.name, *(output / folder / job.name for folder in extras)]


def mask_files(mask: str | None) -> list[Path]:
    if not mask:
        return []
    return [Path(mask)] if Path(mask).is_file() else list_images(mask)


def check_targets(jobs: list[Job], output: Path, cfg: DictConfig) -> None:
    """Refuse to write over an input file, twice to one file, or over earlier results."""
    inputs = {path.resolve() for path in [job.source for job in jobs] + mask_files(cfg.mask)}
    planned: set[Path] = set()
    for target in (target for job in jobs for target in targets(job, output, cfg)):
        if target.resolve() in inputs:
            raise ValueError(
                f"output file {target} is the input file {target.resolve()}: "
                "inputs are never overwritten; choose another output folder"
            )
        if target in planned:
            raise ValueError(f"two results would be written to {target}: choose another output")
        planned.add(target)
    existing = sorted(target for target in planned if target.exists())
    if existing and not cfg.overwrite:
        raise FileExistsError(
            f"output file {existing[0]} already exists ({len(existing)} output files do): "
            "pass overwrite=true to replace them, or choose another output folder"
        )


def load_inpainter(cfg: DictConfig) -> Inpainter:
    """The checkpoint's Inpainter, refused when it cannot serve this config."""
    inpainter = Inpainter.from_checkpoint(
        cfg.ckpt_path, device=cfg.device, precision=str(cfg.precision)
    )
    if not inpainter.paints:
        raise ValueError(
            f"ckpt_path={cfg.ckpt_path} is a {inpainter.kind} checkpoint: it paints nothing; "
            "use a blind, ipn or unet checkpoint"
        )
    if inpainter.needs_mask and not cfg.mask:
        raise ValueError(
            f"ckpt_path={cfg.ckpt_path}: this {inpainter.kind} model takes the mask as input, "
            "so it needs mask=FILE_OR_DIR (white = hole, or mask_invert=true "
            "for black holes)"
        )
    if cfg.save_edges and inpainter.kind == "unet":
        raise ValueError("save_edges=true needs a blind or ipn checkpoint: a unet has no edges")
    return inpainter


def mask_reader(cfg: DictConfig) -> Callable[[Job, tuple], np.ndarray] | None:
    """How a job's given mask is read, checked against the image's shape; None without masks."""
    if not cfg.mask:
        return None
    path = Path(cfg.mask)
    if path.is_dir():
        files = MaskFiles(str(path), cfg.mask_invert)
        return lambda job, shape: files.load(job.source, job.relative, shape)

    def read(job: Job, shape: tuple) -> np.ndarray:
        mask = read_mask(path, cfg.mask_invert)
        check_mask_size(mask, path, job.source, shape)
        return mask

    return read


def load(job: Job, read: Callable[[Job, tuple], np.ndarray] | None) -> Loaded:
    raw = read_pixels(job.source)
    mask = read(job, raw.shape) if read else None
    return Loaded(job, raw, to_float_rgb(raw), mask)


def work_size(shape: tuple, max_side: int) -> tuple[int, int]:
    """The (H, W) an image is inpainted at: its own, or reduced so its longer side is max_side."""
    height, width = shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(array: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    if array.shape[:2] == size:
        return array
    return cv2.resize(array, (size[1], size[0]), interpolation=interpolation)


def upscale(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.clip(resize(array, size, cv2.INTER_CUBIC), 0.0, 1.0)


def shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A given mask at the working size; every reduced pixel it touches is a hole, so the
    painted image covers the whole full-size hole."""
    if mask.shape == size:
        return mask
    return (resize(mask, size, cv2.INTER_AREA) > 0).astype(np.float32)


def inpaint_batch(inpainter: Inpainter, items: list[Loaded], size: tuple) -> list[Painted]:
    """Inpaint images of one working size as one batch; results at each image's full size."""
    images = np.stack([resize(item.image, size, cv2.INTER_AREA) for item in items])
    masks = None
    if items[0].mask is not None:
        masks = torch.from_numpy(np.stack([shrink_mask(item.mask, size) for item in items]))
        masks = masks[:, None]
    result = inpainter(torch.from_numpy(images).permute(0, 3, 1, 2), masks)
    return [
        full_size(inpainter, item, {key: value[i] for key, value in result.items()})
        for i, item in enumerate(items)
    ]


def full_size(inpainter: Inpainter, item: Loaded, result: dict[str, torch.Tensor]) -> Painted:
    """One image's result at full size, composed there as Inpainter composes it: the paint
    wherever a given mask is above 0; blended in by a predicted mask where that is at least
    `intact_below`, with the full-size photo (not its reduced copy) as the other part."""
    size = item.image.shape[:2]
    paint = upscale(result["paint"].permute(1, 2, 0).contiguous().numpy(), size)
    edges = upscale(result["edges"][0].numpy(), size) if "edges" in result else None
    if item.mask is not None:
        return Painted(paint, item.mask > 0, item.mask, edges)
    if "mask" in result:
        mask = upscale(result["mask"][0].numpy(), size)
        blended = blend_by_mask(paint, item.image, mask[..., None])
        return Painted(blended, mask >= inpainter.intact_below, mask, edges)
    return Painted(paint, np.ones(size, bool), np.ones(size, np.float32), edges)


def quantize(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.rint(np.clip(values, 0.0, 1.0) * top).astype(dtype)


def is_grey(pixels: np.ndarray, hole: np.ndarray) -> bool:
    """Grey pixels, stored as one channel or as equal colour channels (OpenCV reads grey +
    alpha PNGs as RGBA). Judged outside the hole, where the damage may be coloured; on the
    whole image when everything is hole."""
    if pixels.ndim == 2:
        return True
    colour = pixels[..., :3][~hole] if not hole.all() else pixels[..., :3].reshape(-1, 3)
    return bool((colour == colour[:, :1]).all())


def compose(raw: np.ndarray, painted: Painted) -> np.ndarray:
    """The input's own pixels with only the hole replaced; grey stays grey (the luminance of
    the result), alpha stays as it was, float images become 16-bit (PNG holds no float)."""
    pixels = raw.copy() if np.issubdtype(raw.dtype, np.integer) else quantize(raw, np.uint16)
    colour = painted.image.astype(np.float32)
    if is_grey(raw, painted.hole):
        colour = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)
        colour = colour if pixels.ndim == 2 else np.repeat(colour[..., None], 3, axis=2)
    channels = pixels[..., :3] if pixels.ndim == 3 else pixels
    channels[painted.hole] = quantize(colour, pixels.dtype)[painted.hole]
    return pixels


def write(item: Loaded, painted: Painted, output: Path, cfg: DictConfig) -> Path:
    """The result, and the mask and edges asked for. If one of them cannot be written, none
    of the image's files is left: the image counts as failed, and a rerun of the command
    must not find its outputs taken."""
    target = output / item.job.name
    files = [(target, write_pixels, compose(item.raw, painted))]
    if cfg.save_mask:
        files.append((output / "masks" / item.job.name, write_image, painted.mask))
    if cfg.save_edges:
        files.append((output / "edges" / item.job.name, write_image, painted.edges))
    tried: list[Path] = []
    try:
        for path, writer, pixels in files:
            tried.append(path)
            writer(path, pixels)
    except BaseException:
        for path in tried:
            if path.is_file():
                path.unlink()
        raise
    return target


def attempt(report: PredictReport, jobs: list[Job], action: Callable, *args, errors=IMAGE_ERRORS):
    """Run a step of some images (one, or a batch); a problem (one of `errors`) is logged and
    recorded for each of them, and None returned. The run's first problem that is not an
    image's own (the network's) is logged with its traceback."""
    try:
        return action(*args)
    except errors as error:
        reason = f"{type(error).__name__}: {error}"
        for job in jobs:
            log.error("skipped %s: %s", job.source, reason)
            report.failed[job.source] = reason
        if not isinstance(error, IMAGE_ERRORS) and not report.network_failed:
            report.network_failed = True  # its traceback once: a fault of the code shows where
            log.error("traceback of the network's first failure:", exc_info=error)
        return None


def remove_earlier_results(failed: list[Job], output: Path, cfg: DictConfig) -> None:
    """With `overwrite=true`, the results an earlier run left for images that failed now:
    kept, they would pass for this run's."""
    for path in (path for job in failed for path in targets(job, output, cfg)):
        if cfg.overwrite and path.is_file():
            path.unlink()
            log.warning("removed %s: an earlier run's result of an image that failed now", path)


def group_by_size(items: list[Loaded], max_side: int) -> dict[tuple, list[Loaded]]:
    groups: dict[tuple, list[Loaded]] = {}
    for item in items:
        groups.setdefault(work_size(item.image.shape, max_side), []).append(item)
    return groups


def predict(cfg: DictConfig) -> PredictReport:
    """Inpaint every input image and write the results; what was written and what failed."""
    source, output = check_config(cfg)
    jobs = plan(source, output, cfg.mask)
    check_targets(jobs, output, cfg)
    inpainter = load_inpainter(cfg)
    read = mask_reader(cfg)
    report = PredictReport()
    with logging_redirect_tqdm(), tqdm(total=len(jobs), unit="image", desc="inpaint") as bar:
        for start in range(0, len(jobs), cfg.batch_size):
            chunk = jobs[start : start + cfg.batch_size]
            loaded = [attempt(report, [job], load, job, read) for job in chunk]
            groups = group_by_size([item for item in loaded if item], cfg.max_side)
            for size, items in groups.items():
                group = [item.job for item in items]
                results = attempt(
                    report, group, inpaint_batch, inpainter, items, size, errors=BATCH_ERRORS
                )
                if results is None:
                    continue
                for item, painted in zip(items, results, strict=True):
                    target = attempt(report, [item.job], write, item, painted, output, cfg)
                    if target:
                        report.written.append(target)
            bar.update(len(chunk))
    remove_earlier_results([job for job in jobs if job.source in report.failed], output, cfg)
    log.info("wrote %d of %d images to %s", len(report.written), len(jobs), output)
    written = [job.source for job in jobs if job.source not in report.failed]
    if profiled := [source for source in written if has_colour_profile(source)]:
        log.warning(
            "%d inputs embed an ICC colour profile (%s%s) that the results do not: their "
            "pixel values are kept, but a colour-managed viewer shows the results in other "
            "colours than the inputs; convert such inputs to sRGB first",
            len(profiled),
            profiled[0],
            ", ..." if len(profiled) > 1 else "",
        )
    return report


# The outputs of this process's jobs that had failed images: a multirun goes on to its
# other jobs, and the command exits non-zero at the end.
failed_outputs: list[str] = []


@hydra.main(version_base="1.3", config_path="../conf/predict", config_name="predict")
def predict_job(cfg: DictConfig) -> None:
    flush_denormals()
    with logged_job(log):
        report = predict(cfg)
    if report.failed:
        total = len(report.failed) + len(report.written)
        log.error("%d of %d images failed:", len(report.failed), total)
        for path, reason in report.failed.items():
            log.error("  %s: %s", path, reason)
        failed_outputs.append(str(cfg.output))


def main() -> None:
    predict_job()
    if failed_outputs:
        if len(failed_outputs) > 1:
            log.error("images failed in %d jobs: %s", len(failed_outputs), failed_outputs)
        sys.exit(1)


if __name__ == "__main__":
    main()
