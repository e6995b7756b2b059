"""`python -m inpaint.bench`: throughput numbers, printed as tables and written to JSON.

Sections: mask synthesis (one core, as in one data-loader worker), Canny edges (OpenCV
worker path vs kornia tensor path), the networks (training images/s, inference ms per
image and peak memory), and the blind pipeline (MPN, Canny + EPN, IPN behind
`inpaint.inference.Inpainter`: ms per damaged photo, in total and per stage), on the CPU
unless a GPU is present, in fp32 and, where the device has bf16 kernels, in bf16. Each
network and pipeline measurement runs in a fresh process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import queue as queue_module
import resource
import time
import warnings
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate

from inpaint.config import compose_config, mask_generator_names
from inpaint.data.edges import EdgeDetector
from inpaint.devices import cpu_computes_bf16, flush_denormals, slow_bf16
from inpaint.inference import Inpainter


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
    for name in mask_generator_names():
        generator = instantiate(compose_config(overrides=[f"mask={name}"]).mask)
        rows.append(
            {"mask": name, "size": size, "masks_per_s": masks_per_second(generator, size, seconds)}
        )
    return rows


def _per_call_seconds(run, seconds: float) -> float:
    run()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 3:
        run()
        count += 1
    return elapsed / count


def bench_edges(sizes: tuple[int, ...], seconds: float, batch: int = 8) -> list[dict]:
    """Milliseconds per image of both Canny paths on crops of a real photo with a hole.

    OpenCV runs one image at a time (as in a loader worker); kornia a batch (as on a device).
    """
    from inpaint.data.sources import SamplePhotos

    photo = SamplePhotos().split("test")[0]
    worker, tensors = EdgeDetector(method="opencv"), EdgeDetector(method="kornia")
    rows = []
    for size in sizes:
        gray = np.ascontiguousarray(cv2.cvtColor(photo[:size, :size], cv2.COLOR_RGB2GRAY))
        mask = np.zeros_like(gray)
        mask[size // 4 : size // 2, size // 4 : size // 2] = 1
        gray_batch = torch.from_numpy(gray)[None, None].repeat(batch, 1, 1, 1)
        mask_batch = torch.from_numpy(mask)[None, None].repeat(batch, 1, 1, 1)
        opencv = _per_call_seconds(lambda g=gray, m=mask: worker.numpy(g, m), seconds)
        kornia = _per_call_seconds(lambda g=gray_batch, m=mask_batch: tensors(g, m), seconds)
        rows.append({"method": "opencv", "size": size, "ms_per_image": 1e3 * opencv})
        rows.append({"method": "kornia", "size": size, "ms_per_image": 1e3 * kornia / batch})
    return rows


class _FixedBatches(torch.utils.data.Dataset):
    """The same synthetic sample again and again: times the network, not the data."""

    def __init__(self, size: int, length: int):
        generator = torch.Generator().manual_seed(0)
        image = torch.rand(3, size, size, generator=generator)
        mask = torch.zeros(1, size, size)
        mask[:, size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
        edge = (torch.rand(1, size, size, generator=generator) > 0.9).float()
        self.sample = {
            "image": image,
            "mask": mask,
            "damaged": image * (1 - mask) + 0.5 * mask,
            "gray": image.mean(0, keepdim=True),
            "edge": edge,
            "damaged_edge": edge * (1 - mask),
        }
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return self.sample


def _now(device: torch.device) -> float:
    """The time once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _peak_mib(device: torch.device, baseline_kib: int) -> float:
    """Peak GPU memory allocated on a GPU; on the CPU, peak RSS above `baseline_kib`."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024


class _BatchTimer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.durations = warmup, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.start = _now(module.device)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.durations.append(_now(module.device) - self.start)


def _inference_inputs(name: str, sample: dict, device: torch.device) -> tuple:
    keys = {
        "mpn": ("damaged",),
        "epn": ("damaged", "damaged_edge", "mask"),
        "ipn": ("damaged", "mask", "edge"),
    }
    return tuple(sample[key][None].to(device) for key in keys[name])


def _measure_network(name: str, size: int, batch: int, precision: str, steps: int, queue) -> None:
    """Runs in a child process: training img/s, inference ms/image, peak memory."""
    flush_denormals()  # as the tools do
    # The bench prints its own rows: Lightning's notes on each trainer it builds are noise.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"lightning\.")
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    model = instantiate(compose_config("train", [f"model={name}"]).model)
    warmup = 1
    data = torch.utils.data.DataLoader(
        _FixedBatches(size, batch * (warmup + steps)), batch_size=batch
    )
    timer = _BatchTimer(warmup)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=1,
        logger=False,
        callbacks=[timer],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, data)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    inputs = _inference_inputs(name, data.dataset.sample, device)
    model = model.to(device).eval()
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16")
    )
    with torch.inference_mode(), autocast:
        model(*inputs)
        start, runs = _now(device), 3
        for _ in range(runs):
            model(*inputs)
        inference_ms = 1e3 * (_now(device) - start) / runs
    queue.put(
        {
            "network": name,
            "size": size,
            "batch": batch,
            "precision": precision,
            "train_img_per_s": batch * len(timer.durations) / sum(timer.durations),
            "infer_ms_per_img": inference_ms,
            "peak_mem_mib": _peak_mib(device, baseline),
        }
    )


def measure_in_child(target, *args) -> dict:
    """`target(*args, queue)` in a fresh process (so its peak memory is its own): its result,
    or an error when the process ends without one (its traceback is printed above)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queue_module.Empty:
            if not child.is_alive() and queue.empty():
                raise RuntimeError(
                    f"the measurement {target.__name__}{args} failed in its process "
                    f"(exit code {child.exitcode})"
                ) from None
    child.join()
    return result


def bench_networks(
    networks: list[str], settings: list[tuple[int, int, int]], precisions: list[str]
) -> list[dict]:
    rows = []
    width = {}
    for name in networks:
        for size, batch, steps in settings:
            for precision in precisions:
                rows.append(measure_in_child(_measure_network, name, size, batch, precision, steps))
                if not width:  # rows print as they come, so the columns get room up front
                    width = {c: max(len(c), STREAMED_COLUMN_WIDTH) for c in rows[0]}
                    print(_line({c: c for c in width}, width))
                print(_line({c: _fmt(v) for c, v in rows[-1].items()}, width))
    return rows


PHOTO_SIDE = 512  # the sample photo the pipeline crops (astronaut, 512x512)


def damaged_photo(size: int) -> torch.Tensor:
    """A crop of a real photo, (1, 3, size, size) in [0, 1], with a square of noise in it."""
    from inpaint.data.sources import SamplePhotos

    photo = SamplePhotos().split("test")[0][:size, :size]
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].contiguous()
    hole = slice(size // 4, size // 2)
    side = hole.stop - hole.start
    generator = torch.Generator().manual_seed(0)
    image[..., hole, hole] = torch.rand(1, 3, side, side, generator=generator)
    return image


def _mark_network_ends(inpainter: Inpainter, marks: list[float]) -> None:
    """Append the time each network of the chain finishes to `marks`."""

    def mark(*_):
        if inpainter.device.type == "cuda":
            torch.cuda.synchronize()
        marks.append(time.perf_counter())

    for network in inpainter.module.generator.values():
        network.register_forward_hook(mark)


def _measure_pipeline(overrides: list[str], size: int, precision: str, seconds: float, queue):
    """Runs in a child process: the fastest of at least 3 calls (the one least disturbed by
    other processes), in total and per stage, and peak memory.

    A stage runs from the previous network's end to its own: the EPN's includes the sigmoid
    of the mask and Canny, the last one the blending and the copy back to the CPU.
    """
    flush_denormals()  # as the tools do
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.manual_seed(0)  # random weights: denormals flushed, the time hardly depends on them
    module = instantiate(compose_config("train", ["experiment=blind", *overrides]).model)
    inpainter = Inpainter(module, device="auto", precision=precision)
    damaged = damaged_photo(size)
    marks: list[float] = []
    _mark_network_ends(inpainter, marks)
    inpainter(damaged)  # warm-up
    calls, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(calls) < 3:
        marks.clear()
        begin = time.perf_counter()
        inpainter(damaged)
        calls.append([begin, *marks[:-1], time.perf_counter()])
    bounds = min(calls, key=lambda bounds: bounds[-1] - bounds[0])
    stages = zip(module.generator, bounds[:-1], bounds[1:], strict=True)
    queue.put(
        {
            "precision": precision,
            "size": size,
            "ms_per_image": 1e3 * (bounds[-1] - bounds[0]),
            **{f"{name}_ms": 1e3 * (end - begin) for name, begin, end in stages},
            "peak_mem_mib": _peak_mib(inpainter.device, baseline),
        }
    )


def bench_pipeline(
    overrides: list[str], size: int, precisions: list[str], seconds: float
) -> list[dict]:
    """The blind model of `experiment=blind` (its widths changed by `overrides`) restoring
    one damaged photo with no mask given, per Inpainter precision ("32", "bf16")."""
    return [
        measure_in_child(_measure_pipeline, overrides, size, precision, seconds)
        for precision in precisions
    ]


STREAMED_COLUMN_WIDTH = 10  # "bf16-mixed" and "12,345.6" fit


def print_table(title: str, rows: list[dict]) -> None:
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in rows[0]}
    print(f"\n{title}")
    print(_line({c: c for c in width}, width))
    for row in rows:
        print(_line({c: _fmt(v) for c, v in row.items()}, width))


def _line(cells: dict[str, str], width: dict[str, int]) -> str:
    return "  ".join(cells[c].rjust(width[c]) for c in width)


def _fmt(value) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


SECTIONS = ("masks", "edges", "networks", "pipeline")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--size", type=int, default=256, help="mask side in pixels")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument(
        "--networks", nargs="+", default=["mpn", "epn", "ipn"], choices=("mpn", "epn", "ipn")
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=("32", "bf16-mixed"),
        help="default: 32 and bf16-mixed; 32 alone on a CPU without bf16 kernels",
    )
    parser.add_argument(
        "--network-sizes",
        nargs="+",
        type=int,
        default=[64, 256],
        help="image sides; batch 8 at 64 px and below, 4 above",
    )
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per setting")
    parser.add_argument(
        "--pipeline-size",
        type=int,
        default=256,
        help=f"photo side in pixels, at most {PHOTO_SIDE} (the sample photo's)",
    )
    parser.add_argument(
        "--pipeline-overrides",
        nargs="*",
        default=[],
        help="Hydra overrides of the blind model, e.g. model.mpn.base=8 (default: paper widths)",
    )
    parser.add_argument("--output", type=Path, default=Path("logs/bench/bench.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.pipeline_size <= PHOTO_SIDE:
        parser.error(
            f"--pipeline-size must be 1 to {PHOTO_SIDE}, the side of the sample photo it crops, "
            f"got {args.pipeline_size}"
        )
    if args.precisions is None:
        reason = slow_bf16("cuda" if torch.cuda.is_available() else "cpu")
        args.precisions = ["32"] if reason else ["32", "bf16-mixed"]
        if reason:
            print(f"bf16 left out: {reason} (--precisions 32 bf16-mixed times it anyway)")

    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cpu_bf16_kernels": cpu_computes_bf16(),
        }
    }
    if "masks" in args.sections:
        threads = torch.get_num_threads()
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        results["masks"] = bench_masks(args.size, args.seconds)
        torch.set_num_threads(threads)
        cv2.setNumThreads(-1)
        print_table(
            f"Mask synthesis at {args.size}x{args.size}, one core (masks/s)", results["masks"]
        )
    if "edges" in args.sections:
        results["edges"] = bench_edges((64, 256), args.seconds)
        print_table(
            "Canny edges, ms per image (OpenCV in a worker vs kornia on the CPU)", results["edges"]
        )
    if "networks" in args.sections:
        print("\nNetworks (training img/s, inference ms/img, peak memory above the idle process):")
        settings = [(size, 8 if size <= 64 else 4, args.steps) for size in args.network_sizes]
        results["networks"] = bench_networks(args.networks, settings, args.precisions)
    if "pipeline" in args.sections:
        precisions = [p.removesuffix("-mixed") for p in args.precisions]
        results["pipeline"] = bench_pipeline(
            args.pipeline_overrides, args.pipeline_size, precisions, args.seconds
        )
        print_table(
            "Blind pipeline, ms per damaged photo given no mask (the EPN stage includes Canny)",
            results["pipeline"],
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.output}")
    return results


if __name__ == "__main__":
    main()
