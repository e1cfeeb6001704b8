"""Which input features a model reads, and how they are normalised on the way in.

Feature names and widths come from the store (``feature_dims``), never from constants, so
a config can pick a subset ("rgb" only, "audio" only) and other feature sets work too.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn
from torch.nn import functional

from yt8mkit.models.base import Classifier, copy_into
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


class VideoClassifier(Classifier):
    """Base of the video-level models: the inputs a config selects (``params.inputs``,
    normalised by ``params.input_norm``) and, by default, a linear output layer
    (``self.output``, built by the subclass). A new model is its parameters class
    (an InputParams), its layers and its ``penultimate``."""

    params: InputParams
    output: nn.Linear

    def __init__(self, num_classes: int, feature_dims: dict[str, int],
                 params: InputParams) -> None:
        super().__init__()  # no layer here: the subclass draws every weight, in its order
        self.num_classes = num_classes
        self.params = params
        self.modalities = select_modalities(feature_dims, params.inputs)

    @property
    def input_width(self) -> int:
        """The width of the concatenated inputs."""
        return sum(self.modalities.values())

    def features(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The selected inputs, normalised, in the config's order."""
        return gather_inputs(inputs, list(self.modalities), self.params.input_norm)

    def concatenated(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(self.features(inputs), dim=1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(features)

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        copy_into(self.output.bias, prior_logits)
