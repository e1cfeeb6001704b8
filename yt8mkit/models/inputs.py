"""Which input features a model reads, and how they are normalised on the way in.

Feature names and widths come from the store (``feature_dims``), never from constants, so
a config can pick a subset ("rgb" only, "audio" only) and other feature sets work too.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch.nn import functional

from yt8mkit.models.registry import ModelConfigError

InputNorm = Literal["none", "l2"]


class InputParams(BaseModel):
    """Parameters every video-level model shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # None reads every feature of the store; ["rgb"] is the paper's "video only" model.
    inputs: list[str] | None = None
    # Per-modality L2 normalisation: +0.035 GAP for logistic on the real data.
    input_norm: InputNorm = "l2"

    @field_validator("inputs")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError(f"inputs must be a non-empty list without repeats, got {value}")
        return value


def select_modalities(feature_dims: dict[str, int], wanted: list[str] | None) -> dict[str, int]:
    """The (name -> width) the model reads, in the config's order (or the store's)."""
    names = list(feature_dims) if wanted is None else wanted
    missing = [n for n in names if n not in feature_dims]
    if missing:
        raise ModelConfigError(
            f"inputs {missing} are not features of this data; available: {list(feature_dims)}"
        )
    return {n: int(feature_dims[n]) for n in names}


def gather_inputs(
    batch: dict[str, torch.Tensor], names: list[str], norm: InputNorm
) -> list[torch.Tensor]:
    """The selected features of a batch, normalised, in ``names`` order."""
    missing = [n for n in names if n not in batch]
    if missing:
        raise KeyError(f"the model reads inputs {names} but the batch lacks {missing}")
    tensors = [batch[n].float() for n in names]
    if norm == "l2":
        tensors = [functional.normalize(t, p=2.0, dim=-1) for t in tensors]
    return tensors
