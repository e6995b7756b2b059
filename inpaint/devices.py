"""Where models run: the device to use, and whether bf16 is fast there."""

from __future__ import annotations

import torch


def pick_device(device: str) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; a GPU that is not there is refused
    with the number that are."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"device={device} is not a device: use auto, cpu, cuda or cuda:N"
        ) from error
    if chosen.type == "cuda":
        count = torch.cuda.device_count()
        if not count or (chosen.index is not None and chosen.index >= count):
            raise ValueError(
                f"device={device}: this machine has {count} CUDA GPU(s) usable by torch "
                f"{torch.__version__}; use device=auto or device=cpu"
            )
    return chosen


def flush_denormals() -> None:
    """Treat denormal floats (below 1.2e-38) as zero on the CPU: arithmetic on them is slow on
    some CPUs (on a 2-core Intel Xeon the blind pipeline of random weights at 256 px took
    1.8 s in fp32 with them, 0.9 s without), and they change no result worth keeping. Call
    it before the first tensor operation: threads torch starts later inherit it, those
    already running do not."""
    torch.set_flush_denormal(True)


def cpu_computes_bf16() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 and up). Without them bf16 falls
    back to reference code: a 3x3 convolution took 270 times as long as in fp32 on a 2-core
    AVX2 EPYC."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def slow_bf16(device: torch.device | str) -> str | None:
    """Why bf16 would be slow on `device`, or None where it is not."""
    if torch.device(device).type != "cpu" or cpu_computes_bf16():
        return None
    return (
        "this CPU has no bf16 kernels (it lacks AVX-512), so bf16 runs on reference code, "
        "a hundred times or more slower than fp32; use precision 32 here"
    )
