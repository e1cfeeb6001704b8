"""Frame subsampling (paper, Sec. 2): k frames at random or at regular intervals, or one
frame per scene, scenes cut where the cosine distance between neighbouring frames passes a
threshold (the paper's Fig. 1). The chosen frames are then averaged, or kept in time order
as a short sequence flattened to (B, k·D) for a video-level head.

The selection functions return frame indices (B, k) and a (B, k) validity mask, so that
frame-level models can subsample too. A video with fewer than k frames (or scenes) fills
the first slots and marks the rest invalid; invalid slots are zero in a sequence and
left out of a mean.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch.nn import functional

from yt8mkit.features.base import Representation
from yt8mkit.features.masking import frame_tensors, gather_frames, lengths
from yt8mkit.features.registry import (
    RepresentationError,
    RepresentationParams,
    register_representation,
)

Method = Literal["random", "regular", "scenes"]
Pool = Literal["mean", "sequence"]
SceneFrame = Literal["first", "middle"]


class SubsamplingParams(RepresentationParams):
    # "random" draws in training only; in eval it takes regular frames, so predictions are
    # deterministic.
    method: Method = "regular"
    k: int = Field(10, ge=1, description="frames (or scenes) kept per video, at most")
    pool: Pool = "mean"
    # Cosine distance (1 - cos) between neighbouring frames above which a new scene starts.
    threshold: float = Field(0.2, gt=0.0, le=2.0)
    scene_frame: SceneFrame = "middle"
    # Features the scene distance is measured on (concatenated); None: every modality.
    scene_features: list[str] | None = None
    seed: int = 0

    @field_validator("scene_features")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("scene_features must be None or a non-empty list")
        return value


def regular_indices(n: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The middle frame of each of k equal parts of each video (all frames if n < k)."""
    i = torch.arange(k, device=n.device)[None, :]
    n = n[:, None]
    spread = torch.div((2 * i + 1) * n, 2 * k, rounding_mode="floor")
    index = torch.where(n >= k, spread, i)
    valid = i < n
    return torch.where(valid, index, torch.zeros_like(index)), valid


def random_indices(
    mask: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """k distinct real frames drawn uniformly (all of them if fewer), in time order."""
    batch, frames = mask.shape
    keys = torch.rand(batch, max(frames, k), generator=generator).to(mask.device)
    real = functional.pad(mask, (0, max(k - frames, 0)), value=False)
    keys = keys.masked_fill(~real, 2.0)  # padding sorts after every real frame
    values, index = keys.topk(k, dim=1, largest=False)
    valid = values <= 1.0  # ascending keys: the real frames fill the first slots
    index = torch.where(valid, index, max(frames, k)).sort(dim=1).values
    return torch.where(valid, index, 0), valid


def neighbour_distances(x: torch.Tensor) -> torch.Tensor:
    """Cosine distance between frame t and t-1, (B, T); 0 at t = 0."""
    unit = functional.normalize(x, dim=2)
    cos = (unit[:, 1:] * unit[:, :-1]).sum(dim=2)
    return functional.pad(1.0 - cos, (1, 0))


def scene_indices(
    x: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
    k: int,
    frame: SceneFrame = "middle",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame per scene for the k longest scenes (ties: the earlier), in time order.

    A scene starts at the first frame and wherever the cosine distance to the previous
    frame exceeds ``threshold``; its frame is its first or its middle one.
    """
    batch, frames = mask.shape
    t = torch.arange(frames, device=mask.device)
    cut = mask & (neighbour_distances(x) > threshold)
    cut[:, 0] = mask[:, 0]
    scene = cut.long().cumsum(dim=1) - 1  # scene of each frame (padding: the last one)
    slot = scene.clamp(min=0)
    size = torch.zeros(batch, frames, dtype=torch.long, device=mask.device)
    size.scatter_add_(1, slot, mask.long())
    # Start of each scene: written from its cut frame; other frames write to a spare column.
    start = torch.zeros(batch, frames + 1, dtype=torch.long, device=mask.device)
    start.scatter_(1, torch.where(cut, slot, frames), t.expand(batch, -1))
    start = start[:, :frames]
    chosen = start if frame == "first" else start + (size - 1).clamp(min=0) // 2
    # Longest first, then earliest; scene slots beyond the video's scenes rank last.
    rank = torch.where(size > 0, size * (frames + 1) + (frames - t), -1)
    if frames < k:
        rank = functional.pad(rank, (0, k - frames), value=-1)
        chosen = functional.pad(chosen, (0, k - frames))
    top = rank.topk(k, dim=1)
    valid = top.values >= 0  # descending ranks: the real scenes fill the first slots
    # Back into time order: scene slots are numbered in time, so sort the chosen slots.
    order = torch.where(valid, top.indices, rank.shape[1]).sort(dim=1).values
    index = chosen.gather(1, order.clamp(max=rank.shape[1] - 1))
    return torch.where(valid, index, 0), valid


@register_representation("subsampling", params=SubsamplingParams)
class FrameSubsampling(Representation):
    def __init__(self, feature_dims: dict[str, int], params: SubsamplingParams) -> None:
        super().__init__(feature_dims)
        self.params = params
        scene = params.scene_features or list(self.feature_dims)
        missing = [m for m in scene if m not in self.feature_dims]
        if missing:
            raise RepresentationError(
                f"scene_features {missing} are not frame features; have {list(self.feature_dims)}"
            )
        self.scene_features = scene
        width = params.k if params.pool == "sequence" else 1
        self.output_dims = {m: width * d for m, d in self.feature_dims.items()}
        self.generator = torch.Generator().manual_seed(params.seed)

    def is_fixed(self) -> bool:
        return super().is_fixed() and self.params.method != "random"

    def select(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (B, k) and validity of the frames this representation keeps."""
        p = self.params
        names = list(dict.fromkeys([*self.feature_dims, *self.scene_features]))
        tensors, mask = frame_tensors(batch, names)
        if p.method == "random" and self.training:
            return random_indices(mask, p.k, self.generator)
        if p.method == "scenes":
            by_name = dict(zip(names, tensors))
            x = torch.cat([by_name[m] for m in self.scene_features], dim=2)
            return scene_indices(x, mask, p.threshold, p.k, p.scene_frame)
        return regular_indices(lengths(mask), p.k)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        index, valid = self.select(batch)
        tensors, _ = frame_tensors(batch, list(self.feature_dims))
        out = {}
        for name, x in zip(self.feature_dims, tensors):
            picked = gather_frames(x, index, valid)
            if self.params.pool == "mean":
                count = valid.sum(dim=1, keepdim=True).clamp(min=1).to(x.dtype)
                out[name] = picked.sum(dim=1) / count
            else:
                out[name] = picked.flatten(1)
        return out
