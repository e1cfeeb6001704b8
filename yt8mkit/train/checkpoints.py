"""Checkpoints hold plain data only (tensors, state dicts, numbers, strings, lists,
dicts), so that they load with ``torch.load(weights_only=True)``: a checkpoint from
someone else's run directory can then not run code when a run resumes or exports."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from yt8mkit.errors import Yt8mError


def plain(value: object) -> object:
    """``value`` with numpy scalars and arrays made Python numbers and tensors (the
    only things here that weights_only loading refuses)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def save_checkpoint(path: Path, state: dict) -> None:
    """Written under a temporary name and renamed: a checkpoint is whole or absent."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(plain(state), tmp)
    except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        raise Yt8mError(
            f"{path}: checkpoint could not be written ({str(err).splitlines()[0]}); the "
            f"previous one is kept, and a rerun resumes from it"
        ) from None
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> dict:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpickling errors come as several types
        raise Yt8mError(
            f"{path}: not a checkpoint this tool can load safely ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    if not isinstance(state, dict):
        raise Yt8mError(f"{path}: not a checkpoint (holds a {type(state).__name__})")
    return state
