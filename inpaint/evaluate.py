"""`python -m inpaint.evaluate ckpt_path=CKPT`: a trained model beside classical inpainting on
exactly the same images and masks, overall and by hole ratio.

The classical baselines (inpaint/baselines.py) are given the true mask. The model is given
what it was trained to take: an IPN (and a U-Net trained with `model=unet_mask`) the true
mask; a U-Net and a blind model nothing but the damaged image. Writes `metrics.json`,
`metrics.csv`, `metrics.md` (the printed tables) and `panel.png` into the run directory.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F
from tqdm import tqdm

from inpaint.baselines import BASELINES, inpaint_classical
from inpaint.config import logged_job, record_job
from inpaint.data.damage import damage, make_fill, other_index
from inpaint.data.dataset import require_seed, split_key
from inpaint.data.images import (
    UnreadableImageError,
    is_readable_image,
    list_images,
    read_image,
    read_pixels,
    write_image,
)
from inpaint.data.mask_files import MaskFiles
from inpaint.devices import flush_denormals
from inpaint.inference import Inpainter
from inpaint.models.metrics import EdgeMetrics, ImageMetrics, MaskMetrics
from inpaint.visual import image_grid

log = logging.getLogger(__name__)

MODEL = "model"
OUTPUTS = ("metrics.json", "metrics.csv", "metrics.md", "panel.png")
ALL = "all"
IMAGE_COLUMNS = ("psnr", "ssim", "psnr_hole", "l1_hole", "l1")
BLIND_COLUMNS = ("mask_iou", "mask_f1", "mask_bce", "edge_precision", "edge_recall")


@dataclass
class Sample:
    name: str
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    mask: np.ndarray  # (H, W) float32 in [0, 1], 1 = hole
    damaged: np.ndarray  # (H, W, 3)


def bucket_of(ratio: float, width: float) -> str:
    """`0-10%`, `10-20%`, ...: the hole-ratio bucket of one mask (its mean damage).

    A ratio on a boundary opens the next bucket, also when float rounding puts it a hair
    below (0.3 / 0.1 is 2.999...): the quotient is rounded to 6 places before flooring.
    """
    count = round(1 / width)
    index = min(math.floor(round(ratio / width, 6)), count - 1)
    return f"{round(100 * index * width)}-{round(100 * (index + 1) * width)}%"


def bucket_names(width: float) -> list[str]:
    return [bucket_of((i + 0.5) * width, width) for i in range(round(1 / width))]


# -- samples ---------------------------------------------------------------------------
def config_or_stored(cfg: DictConfig, key: str, stored: dict) -> dict:
    """The data or mask config given on the command line (`data=NAME`), else the
    checkpoint's own, with any keys given as `+data.KEY=VALUE` replaced (a moved data root)."""
    given = cfg.get(key)
    if given is not None and "_target_" in given:
        return OmegaConf.to_container(given, resolve=True)
    if not stored.get(key):
        raise ValueError(
            f"the checkpoint stores no {key} config (written before inpaint.run kept it): "
            f"give {key}=NAME"
        )
    if given is None:
        return stored[key]
    # Resolved in the whole config first: `+data.source.root=${paths.data_dir}/x` needs it.
    changes = OmegaConf.to_container(given, resolve=True)
    return OmegaConf.to_container(OmegaConf.merge(stored[key], changes), resolve=True)


def split_samples(dataset) -> Iterator[Sample]:
    """The data module's seeded evaluation crops, masks and damage, as the run's test saw them."""
    for index in range(len(dataset)):
        item = dataset[index]
        yield Sample(
            f"{dataset.split}/{index}",
            item["image"].permute(1, 2, 0).numpy(),
            item["mask"][0].numpy(),
            item["damaged"].permute(1, 2, 0).numpy(),
        )


def folder_samples(root: Path, paths: list[Path], mask, seed: int) -> Iterator[Sample]:
    """Every image below `root` at its own size, with its mask file or a seeded drawn mask."""
    for index, path in enumerate(paths):
        image = read_image(path)
        relative = path.relative_to(root)
        rng = np.random.default_rng([seed, split_key("evaluate"), index])
        if isinstance(mask, MaskFiles):
            hole = mask.load(path, relative, image.shape)
        else:
            hole = mask(rng, *image.shape[:2])
        other = None
        if mask.fill == "image":
            other_path = paths[other_index(index, len(paths), rng)]
            other = cv2.resize(read_image(other_path), image.shape[1::-1])
        fill = make_fill(mask.fill, rng, image.shape, other)
        yield Sample(str(relative), image, hole, damage(image, hole, fill))


def named(paths: list[str]) -> str:
    return ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")


# SSIM's 11 px Gaussian window pads by 5 px on each side, reflecting: a side needs 6.
MIN_SIDE = 6


def check_folder(
    root: Path, paths: list[Path], masks: MaskFiles | None, scored: int, fills: bool = False
) -> None:
    """Every image is an image (its header, as a cheap check), each of the first `scored`
    (every image, when they are all `fills` of holes) decodes whole, the scored ones are at
    least MIN_SIDE px on a side and have a readable mask file of their size: checked before
    any scoring, so a long run cannot fail at its last image."""
    unreadable = [str(path.relative_to(root)) for path in paths if not is_readable_image(path)]
    if unreadable:
        raise UnreadableImageError(
            f"{len(unreadable)} of {len(paths)} files in images={root} are not readable "
            f"images (remove or replace them): {named(unreadable)}"
        )
    decoded = paths if fills else paths[:scored]
    shapes, broken = {}, []
    for path in decoded:
        try:
            shapes[path] = read_pixels(path).shape
        except UnreadableImageError:
            broken.append(str(path.relative_to(root)))
    if broken:
        raise UnreadableImageError(
            f"{len(broken)} of {len(decoded)} images in images={root} do not decode whole "
            f"(truncated or damaged; remove or replace them): {named(broken)}"
        )
    small = [str(p.relative_to(root)) for p in paths[:scored] if min(shapes[p][:2]) < MIN_SIDE]
    if small:
        raise ValueError(
            f"{len(small)} of {scored} images in images={root} are under {MIN_SIDE} px on a "
            f"side, too small for SSIM's window: {named(small)}"
        )
    if masks is None:
        return
    missing, unusable, first_missing = [], [], ""
    for path in paths[:scored]:
        try:
            masks.load(path, path.relative_to(root), shapes[path])
        except FileNotFoundError as error:
            missing.append(str(path.relative_to(root)))
            first_missing = first_missing or str(error)
        except ValueError as error:  # an unreadable mask, or one of another size
            unusable.append(str(error))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {scored} images in images={root} have no mask in "
            f"mask.root={masks.root}: {named(missing)} ({first_missing})"
        )
    if unusable:
        raise ValueError(
            f"{len(unusable)} of {scored} masks in mask.root={masks.root} cannot be used: "
            + "; ".join(unusable[:3])
            + ("; ..." if len(unusable) > 3 else "")
        )


def samples(cfg: DictConfig, stored: dict) -> tuple[Iterator[Sample], int]:
    mask = instantiate(config_or_stored(cfg, "mask", stored))
    if cfg.images:
        root = Path(cfg.images)
        if not root.is_dir():
            raise FileNotFoundError(f"images={root} is not a folder")
        paths = list_images(root, exclude=[mask.root] if isinstance(mask, MaskFiles) else [])
        if not paths:
            raise FileNotFoundError(f"images={root} holds no image files")
        if mask.fill == "image" and len(paths) < 2:
            raise ValueError(
                f"mask.fill=image fills each hole from another image, and images={root} holds "
                "one: give more images or another mask.fill (zeros, ones, colour, noise)"
            )
        scored = min(len(paths), cfg.limit or len(paths))
        masks = mask if isinstance(mask, MaskFiles) else None
        check_folder(root, paths, masks, scored, fills=mask.fill == "image")
        return folder_samples(root, paths, mask, require_seed(cfg.seed, "seed")), len(paths)
    if isinstance(mask, MaskFiles):
        raise ValueError("mask=files matches masks to whole images by name: give images=DIR")
    data = config_or_stored(cfg, "data", stored)
    dataset = instantiate({**data, "edges": None}, mask=mask).evaluation_dataset(cfg.split)
    return split_samples(dataset), len(dataset)


# -- scoring ---------------------------------------------------------------------------
def _tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) -> (1, C, H, W)."""
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].float()


class Scores:
    """Metric groups per (method, bucket), including the bucket `all`."""

    def __init__(self):
        self.groups: dict[tuple[str, str], dict] = {}
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def _group(self, method: str, bucket: str, name: str, cls) -> torch.nn.Module:
        groups = self.groups.setdefault((method, bucket), {})
        return groups.setdefault(name, cls())

    def count(self, bucket: str) -> None:
        for key in (bucket, ALL):
            self.counts[key] = self.counts.get(key, 0) + 1

    def add_image(self, method, bucket, restored, image, mask) -> None:
        for key in (bucket, ALL):
            self._group(method, key, "image", ImageMetrics).update(restored, image, mask)

    def add_blind(self, bucket, result, mask, true_edges) -> None:
        for key in (bucket, ALL):
            self._group(MODEL, key, "mask", MaskMetrics).update(result["mask"], mask)
            self._group(MODEL, key, "edge", EdgeMetrics).update(result["edges"], true_edges, mask)

    def compute(self) -> dict[str, dict]:
        """{bucket: {"count": n, method: {metric: value}}}, buckets in hole-ratio order."""
        table: dict[str, dict] = {}
        for (method, bucket), groups in self.groups.items():
            values = {}
            for group in groups.values():
                values |= {name: float(value) for name, value in group.compute().items()}
            values = {k: v for k, v in values.items() if not math.isnan(v)}
            table.setdefault(bucket, {"count": self.counts[bucket]})[method] = values
        return table


def evaluate(cfg: DictConfig) -> dict:
    """Score the model and the baselines on every sample; write and return the results."""
    if isinstance(cfg.baselines, str):  # baselines=telea on the command line: one name
        cfg.baselines = [cfg.baselines]
    unknown = set(cfg.baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"baselines: unknown {sorted(unknown)}; expected some of {BASELINES}")
    if cfg.limit is not None and cfg.limit < 1:
        raise ValueError(
            f"limit must be a number of samples >= 1, or null for all; got {cfg.limit}"
        )
    percent = round(100 * cfg.bucket_width, 6)
    if not (0 < percent <= 100 and percent == int(percent) and 100 % int(percent) == 0):
        raise ValueError(
            "bucket_width must split 0-100% into buckets of a whole number of percent "
            f"(0.01, 0.02, 0.04, 0.05, 0.1, 0.2, 0.25, 0.5 or 1); got {cfg.bucket_width}"
        )
    directory = Path(cfg.paths.output_dir)
    if earlier := [name for name in OUTPUTS if (directory / name).exists()]:
        raise FileExistsError(
            f"{directory} already holds {', '.join(earlier)} of an earlier run, which "
            "evaluate would replace: give another hydra.run.dir"
        )
    inpainter = Inpainter.from_checkpoint(
        cfg.ckpt_path, device=cfg.device, precision=str(cfg.precision)
    )
    give_mask = inpainter.needs_mask
    stream, length = samples(cfg, inpainter.trained_with)
    # The checks passed: an earlier evaluation's record is replaced only now.
    record_job(cfg, directory, ".evaluate")
    total = min(length, cfg.limit) if cfg.limit else length
    scores, panel = Scores(), []
    for sample in tqdm(islice(stream, total), total=total, desc="evaluate", unit="image"):
        bucket = bucket_of(float(sample.mask.mean()), cfg.bucket_width)
        scores.count(bucket)
        image, mask = _tensor(sample.image), _tensor(sample.mask)
        restored = {}
        for name in cfg.baselines:
            start = time.perf_counter()
            restored[name] = _tensor(inpaint_classical(name, sample.damaged, sample.mask))
            scores.seconds[name] = scores.seconds.get(name, 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        result = inpainter(_tensor(sample.damaged), mask if give_mask else None)
        scores.seconds[MODEL] = scores.seconds.get(MODEL, 0.0) + time.perf_counter() - start
        if inpainter.paints:
            restored[MODEL] = result["output"]
        for method, output in restored.items():
            scores.add_image(method, bucket, output, image, mask)
        if inpainter.predicts_mask:
            gray = cv2.cvtColor(sample.image, cv2.COLOR_RGB2GRAY)
            true_edges = _tensor(inpainter.edges.numpy(gray))
            scores.add_blind(bucket, result, mask, true_edges)
        if len(panel) < cfg.panel_rows:
            panel.append(panel_row(sample, restored, result, inpainter.predicts_mask))
    report = {
        "checkpoint": str(cfg.ckpt_path),
        "model": inpainter.kind,
        "model_given_mask": give_mask,
        "samples": scores.counts.get(ALL, 0),
        "ms_per_image": {
            method: 1e3 * seconds / max(1, scores.counts.get(ALL, 0))
            for method, seconds in scores.seconds.items()
        },
        "buckets": order_buckets(scores.compute(), cfg.bucket_width),
        "panel_columns": list(panel[0]) if panel else [],
    }
    write_outputs(directory, report, panel, cfg.panel_tile)
    return report


def order_buckets(table: dict, width: float) -> dict:
    order = [ALL, *bucket_names(width)]
    return {bucket: table[bucket] for bucket in order if bucket in table}


# -- outputs ---------------------------------------------------------------------------
def panel_row(
    sample: Sample, restored: dict, result: dict, predicts_mask: bool
) -> dict[str, torch.Tensor]:
    """One row of panel.png: damaged, mask, each baseline but the input, the predicted mask
    (blind models), the model's output, the ground truth."""
    row = {"damaged": _tensor(sample.damaged), "mask": _tensor(sample.mask)}
    row |= {name: image for name, image in restored.items() if name not in ("input", MODEL)}
    if predicts_mask:
        row["predicted mask"] = result["mask"]
    if MODEL in restored:
        row[MODEL] = restored[MODEL]
    return row | {"ground truth": _tensor(sample.image)}


# Letterbox margins: pale blue, a colour no mask column shows (white there is a hole).
MARGIN = (0.8, 0.9, 1.0)


def letterbox(image: torch.Tensor, side: int) -> torch.Tensor:
    """Fit (1, C, H, W) into a side x side RGB tile with MARGIN around it, keeping its
    aspect ratio."""
    height, width = image.shape[-2:]
    scale = side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    tile = torch.tensor(MARGIN).view(1, 3, 1, 1).repeat(1, 1, side, side)
    top, left = (side - size[0]) // 2, (side - size[1]) // 2
    tile[..., top : top + size[0], left : left + size[1]] = resized
    return tile


def write_panel(path: Path, rows: list[dict[str, torch.Tensor]], tile: int) -> None:
    """One row per sample; tiles of different sizes are letterboxed to `tile` pixels."""
    if len({row["damaged"].shape[-2:] for row in rows}) > 1:
        rows = [{name: letterbox(image, tile) for name, image in row.items()} for row in rows]
    columns = [torch.cat([row[name] for row in rows]) for name in rows[0]]
    write_image(path, image_grid(columns, rows=len(rows)).permute(1, 2, 0).numpy())


def markdown_tables(report: dict) -> str:
    """The overall table, hole PSNR by bucket, and for blind models the mask and edge table."""
    buckets = report["buckets"]
    overall = buckets[ALL]
    methods = [m for m in overall if m != "count"]
    given = "true mask" if report["model_given_mask"] else "damaged image only"
    lines = [
        f"{report['samples']} samples; baselines are given the true mask, "
        f"the model ({report['model']}) is given the {given}.",
        "",
        "| method | PSNR | SSIM | hole PSNR | hole L1 | ms/image |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        values = overall[method]
        if "psnr" not in values:
            continue
        cells = [f"{values.get(k, math.nan):.3f}" for k in ("psnr", "ssim", "psnr_hole", "l1_hole")]
        ms = report["ms_per_image"].get(method, math.nan)
        lines.append(f"| {method} | {' | '.join(cells)} | {ms:.1f} |")
    ratio_buckets = [b for b in buckets if b != ALL]
    lines += [
        "",
        "Hole PSNR by hole ratio (samples per bucket in brackets):",
        "",
        "| method | " + " | ".join(f"{b} ({buckets[b]['count']})" for b in ratio_buckets) + " |",
        "|---" * (len(ratio_buckets) + 1) + "|",
    ]
    for method in methods:
        if "psnr_hole" not in overall[method]:
            continue
        cells = [
            f"{buckets[b].get(method, {}).get('psnr_hole', math.nan):.2f}" for b in ratio_buckets
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if report["panel_columns"]:
        lines += ["", "panel.png columns: " + ", ".join(report["panel_columns"]) + "."]
    if "mask_iou" in overall.get(MODEL, {}):
        lines += ["", "| " + " | ".join(BLIND_COLUMNS) + " |", "|---" * len(BLIND_COLUMNS) + "|"]
        lines.append("| " + " | ".join(f"{overall[MODEL][k]:.3f}" for k in BLIND_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(directory: Path, report: dict, panel: list, tile: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    # "x": of two runs begun in one second (one folder), the first to finish keeps its files.
    with (directory / "metrics.json").open("x") as handle:
        handle.write(json.dumps(report, indent=2) + "\n")
    columns = ["method", "bucket", "count", "ms_per_image", *IMAGE_COLUMNS, *BLIND_COLUMNS]
    with (directory / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for bucket, entry in report["buckets"].items():
            for method, values in entry.items():
                if method == "count":
                    continue
                ms = report["ms_per_image"].get(method)
                writer.writerow(
                    {"method": method, "bucket": bucket, "count": entry["count"]}
                    | {"ms_per_image": ms}
                    | values
                )
    tables = markdown_tables(report)
    (directory / "metrics.md").write_text(tables)
    if panel:
        write_panel(directory / "panel.png", panel, tile)
    print(tables)
    log.info("evaluation written to %s", directory)


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    flush_denormals()
    with logged_job(log):
        evaluate(cfg)


if __name__ == "__main__":
    main()
