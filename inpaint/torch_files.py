"""Files written by `torch.save` (checkpoints, weights), read with errors that name the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


def require_checkpoint_file(ckpt_path: str | Path) -> Path:
    """`ckpt_path` as a Path, refused by name if it is a folder or missing."""
    path = Path(ckpt_path)
    if path.is_dir():
        raise IsADirectoryError(
            f"ckpt_path={ckpt_path} is a folder: give a checkpoint file, such as a run's "
            "checkpoints/last.ckpt"
        )
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
    return path


def load_torch_file(path: Path, what: str, weights_only: bool = False):
    """`torch.load` onto the CPU; a file torch cannot read is a ValueError naming it and `what`
    it should have been, instead of a bare unpickling error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except (pickle.UnpicklingError, EOFError, RuntimeError) as error:
        reason = str(error).strip().split("\n", 1)[0] or type(error).__name__
        raise ValueError(f"{path} is not {what} that torch can read ({reason})") from None


def state_dict_mismatch(error: RuntimeError, keys_shown: int = 3) -> str:
    """The first line that `load_state_dict`'s error gives after its heading (the missing or
    unexpected keys, or the first size mismatch), with its first `keys_shown` keys only."""
    lines = str(error).split("\n", 2)
    line = lines[1].strip() if len(lines) > 1 else lines[0]
    heading, _, keys = line.partition(": ")
    names = keys.split(", ")
    if heading.endswith("key(s) in state_dict") and len(names) > keys_shown:
        return f"{heading}: {', '.join(names[:keys_shown])}, ... ({len(names)} in all)"
    return line
