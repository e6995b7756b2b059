"""`python -m inpaint.preview mask=NAME data=NAME`: see what a mask config does before training.

Writes a grid of damaged samples and their masks and prints hole-ratio statistics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from inpaint.data.images import write_image
from inpaint.visual import image_grid

log = logging.getLogger(__name__)


def hole_ratio_stats(mask_generator, count: int, size: int, seed: int) -> dict[str, float]:
    """Mean, min and max hole ratio (mean mask value) over `count` seeded masks."""
    ratios = np.array(
        [mask_generator(np.random.default_rng([seed, i]), size, size).mean() for i in range(count)]
    )
    return {"mean": float(ratios.mean()), "min": float(ratios.min()), "max": float(ratios.max())}


@hydra.main(version_base="1.3", config_path="../conf", config_name="preview")
def main(cfg: DictConfig) -> None:
    for key in ("rows", "count"):
        if cfg[key] < 1:
            raise ValueError(f"{key} must be >= 1, got {cfg[key]}")
    mask = instantiate(cfg.mask)
    datamodule = instantiate(cfg.data, mask=mask)
    dataset = datamodule.dataset(cfg.split)
    samples = [dataset[i] for i in range(min(cfg.rows, len(dataset)))]
    columns = [
        torch.stack([sample[key] for sample in samples]) for key in ("damaged", "mask", "image")
    ]
    path = Path(cfg.paths.output_dir) / "preview.png"
    write_image(path, image_grid(columns, rows=cfg.rows).permute(1, 2, 0).numpy())
    stats = hole_ratio_stats(mask, cfg.count, datamodule.image_size, cfg.seed)
    print(
        f"mask={cfg.mask._target_.rsplit('.', 1)[-1]} fill={mask.fill} size={datamodule.image_size}"
    )
    print(
        f"hole ratio over {cfg.count} masks: mean {stats['mean']:.3f}  "
        f"min {stats['min']:.3f}  max {stats['max']:.3f}"
    )
    print(f"grid (damaged | mask | original): {path}")


if __name__ == "__main__":
    main()
