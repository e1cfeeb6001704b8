"""The base class of frame representations (the registry, ``features/registry.py``,
imports no torch; this does)."""

from __future__ import annotations

import torch
from torch import nn

from yt8mkit.features.registry import RepresentationError


class Representation(nn.Module):
    """Base class: ``forward(batch) -> {name: (B, output_dims[name])}``."""

    output_dims: dict[str, int]

    def __init__(self, feature_dims: dict[str, int]) -> None:
        super().__init__()
        if not feature_dims:
            raise RepresentationError("a representation needs at least one frame feature")
        self.feature_dims = {str(k): int(v) for k, v in feature_dims.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def is_fixed(self) -> bool:
        """The same output for a video at every step: no trainable weight, no random
        draw. Such a representation can be computed once (``features.derive``)."""
        return not any(p.requires_grad for p in self.parameters())
