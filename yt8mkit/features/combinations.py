"""Learnable linear combinations of frames (paper, Sec. 2: "ResNetLike over linear
combinations", its best way to bring frame-level data into a video-level model).

Combination j of a video with n real frames is sum_t a_j(t, n) x_t, where the trainable
weight of combination j at position t, w_j(t), is normalised over the video's real
positions:

- ``softmax``: a_j(t, n) = softmax over t < n of w_j(t) (a convex combination);
- ``mean``: a_j(t, n) = w_j(t) / n (weights start at 1, i.e. at the frame mean).

The position is the frame's index (``position="absolute"``: one weight per index up to
``max_frames``) or its place in the video, (t + 0.5) / n (``"relative"``: ``knots``
weights spread over [0, 1], linearly interpolated), so that "the second fifth of the
video" means the same frames whatever its length. ``init="segments"`` starts combination
j as a soft mean over the j-th of n equal parts of the video instead of the whole: a
class shown in a few scenes is then diluted by its part only, not by the whole video.

The same coefficients apply to every modality (they weigh frames, and a frame is all of
its modalities); each modality's n combinations are concatenated: (B, n·D).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from yt8mkit.features.base import Representation
from yt8mkit.features.masking import frame_tensors, lengths
from yt8mkit.features.registry import (
    RepresentationParams,
    register_representation,
)

Normalise = Literal["softmax", "mean"]
Position = Literal["absolute", "relative"]
Init = Literal["uniform", "segments"]


class CombinationsParams(RepresentationParams):
    combinations: int = Field(5, ge=1)
    max_frames: int = Field(300, ge=1)
    normalise: Normalise = "softmax"
    # Spread of the initial weights around the frame mean: distinct combinations from
    # the first step (equal ones would get equal gradients only through a symmetric head).
    init_std: float = Field(0.1, ge=0.0)
    position: Position = "absolute"
    knots: int = Field(32, ge=2)
    init: Init = "uniform"


@register_representation("combinations", params=CombinationsParams)
class FrameCombinations(Representation):
    def __init__(self, feature_dims: dict[str, int], params: CombinationsParams) -> None:
        super().__init__(feature_dims)
        if params.init == "segments" and params.normalise != "softmax":
            raise ValueError("init 'segments' needs normalise 'softmax'")
        self.params = params
        n = params.combinations
        width = params.knots if params.position == "relative" else params.max_frames
        start = torch.full((n, width), 0.0 if params.normalise == "softmax" else 1.0)
        if params.init == "segments":
            # Log-weights falling with the squared distance, in segments, to the centre
            # of combination j's part: e^-2 one part away.
            u = (torch.arange(width) + 0.5) / width
            centres = (torch.arange(n) + 0.5) / n
            start = -2.0 * ((u[None, :] - centres[:, None]) * n) ** 2
        self.weight = nn.Parameter(start + params.init_std * torch.randn(n, width))
        self.output_dims = {m: n * d for m, d in self.feature_dims.items()}

    def _weights(self, mask: torch.Tensor) -> torch.Tensor:
        """(B or 1, n, T) weight of each combination at each frame of the batch."""
        frames = mask.shape[1]
        if self.params.position == "absolute":
            if frames > self.params.max_frames:
                raise ValueError(
                    f"{frames} frames in the batch, but the combinations have weights for "
                    f"{self.params.max_frames} positions (raise max_frames, or truncate)"
                )
            return self.weight[None, :, :frames]
        # Relative: interpolate the knots at (t + 0.5) / n of each video.
        n = lengths(mask).clamp(min=1).to(self.weight.dtype)[:, None]
        t = torch.arange(frames, dtype=self.weight.dtype, device=mask.device)[None, :]
        place = ((t + 0.5) / n).clamp(max=1.0) * self.params.knots - 0.5
        place = place.clamp(0.0, self.params.knots - 1.0)
        low = place.floor().long().clamp(max=self.params.knots - 2)
        frac = (place - low.to(place.dtype))[:, None, :]
        w = self.weight
        return w[:, low].permute(1, 0, 2) * (1 - frac) + w[:, low + 1].permute(1, 0, 2) * frac

    def coefficients(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, n, T) coefficient of each frame in each combination, zero on padding."""
        w = self._weights(mask)
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
