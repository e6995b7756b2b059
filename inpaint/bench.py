"""`python -m inpaint.bench`: throughput numbers, printed as a table and written to JSON.

Mask synthesis is timed on one core (OpenCV and torch limited to one thread), since each
data-loader worker draws masks on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from hydra.utils import instantiate

from inpaint.config import compose_config, config_names


def masks_per_second(generator, size: int, seconds: float) -> float:
    """Masks drawn per second on one core, over at least `seconds` of drawing."""
    rng = np.random.default_rng(0)
    generator(rng, size, size)  # warm-up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 20:
        generator(rng, size, size)
        count += 1
    return count / elapsed


def bench_masks(size: int, seconds: float) -> list[dict]:
    rows = []
    for name in config_names("mask"):
        generator = instantiate(compose_config(overrides=[f"mask={name}"]).mask)
        rows.append(
            {"mask": name, "size": size, "masks_per_s": masks_per_second(generator, size, seconds)}
        )
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("  ".join(c.rjust(width[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row[c]).rjust(width[c]) for c in columns))


def _fmt(value) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="mask side in pixels")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--output", type=Path, default=Path("logs/bench/bench.json"))
    args = parser.parse_args(argv)

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "masks": bench_masks(args.size, args.seconds),
    }
    print_table(f"Mask synthesis at {args.size}x{args.size}, one core (masks/s)", results["masks"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return results


if __name__ == "__main__":
    main()
