"""Learnable linear combinations of frames (paper, Sec. 2: "ResNetLike over linear
combinations", its best way to bring frame-level data into a video-level model).

Combination j of a video with n real frames is sum_t a_j(t, n) x_t, where the trainable
weight of combination j at position t, w_j[t] (one per position up to ``max_frames``), is
normalised over the video's real positions:

- ``softmax``: a_j(t, n) = softmax over t < n of w_j[t] (a convex combination);
- ``mean``: a_j(t, n) = w_j[t] / n (weights start at 1, i.e. at the frame mean).

The same coefficients apply to every modality (they weigh frames, and a frame is all of
its modalities); each modality's n combinations are concatenated: (B, n·D).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from yt8mkit.features.masking import frame_tensors, lengths
from yt8mkit.features.registry import (
    Representation,
    RepresentationParams,
    register_representation,
)

Normalise = Literal["softmax", "mean"]


class CombinationsParams(RepresentationParams):
    combinations: int = Field(5, ge=1)
    max_frames: int = Field(300, ge=1)
    normalise: Normalise = "softmax"
    # Spread of the initial weights around the frame mean: distinct combinations from
    # the first step (equal ones would get equal gradients only through a symmetric head).
    init_std: float = Field(0.1, ge=0.0)


@register_representation("combinations", params=CombinationsParams)
class FrameCombinations(Representation):
    def __init__(self, feature_dims: dict[str, int], params: CombinationsParams) -> None:
        super().__init__(feature_dims)
        self.params = params
        n = params.combinations
        start = 0.0 if params.normalise == "softmax" else 1.0
        self.weight = nn.Parameter(
            start + params.init_std * torch.randn(n, params.max_frames)
        )
        self.output_dims = {m: n * d for m, d in self.feature_dims.items()}

    def coefficients(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, n, T) coefficient of each frame in each combination, zero on padding."""
        frames = mask.shape[1]
        if frames > self.params.max_frames:
            raise ValueError(
                f"{frames} frames in the batch, but the combinations have weights for "
                f"{self.params.max_frames} positions (raise max_frames, or truncate)"
            )
        w = self.weight[None, :, :frames]
        real = mask[:, None, :]
        if self.params.normalise == "softmax":
            # A finite fill keeps a video without frames at zeros instead of NaN.
            filled = w.masked_fill(~real, torch.finfo(w.dtype).min)
            return torch.softmax(filled, dim=2) * real.to(w.dtype)
        n = lengths(mask).clamp(min=1).to(w.dtype)[:, None, None]
        return w * real.to(w.dtype) / n

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors, mask = frame_tensors(batch, list(self.feature_dims))
        a = self.coefficients(mask)
        return {
            name: torch.bmm(a.to(x.dtype), x).flatten(1)
            for name, x in zip(self.feature_dims, tensors)
        }
