"""What the frame-level models share: reading a padded frame batch, masked pooling and
softmax over time, running a per-frame network on the real frames only, and the base class
with a linear output layer.

A frame batch maps each modality to a float tensor (B, T, D), zero-padded after each
video's end, and ``"frame_mask"`` to a bool tensor (B, T), True on real frames. Real frames
come first (the mask is a prefix); every video has at least one. Every helper here ignores
padding, so a video gives the same output alone as padded inside a longer batch.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn import functional

from yt8mkit.models.base import Classifier, copy_into
from yt8mkit.models.inputs import InputNorm, InputParams, gather_inputs, select_modalities
from yt8mkit.models.layers import FCBlock

FRAME_MASK = "frame_mask"


class FrameInputParams(InputParams):
    """Parameters every frame-level model shares."""

    # Frames go in raw by default, as the authors fed them; "l2" normalises every frame.
    input_norm: InputNorm = "none"


class FrameHeadParams(FrameInputParams):
    """Frame-level models that end in fully connected blocks after pooling over time."""

    # FC blocks (Linear, BatchNorm, LeakyReLU, Dropout) between the pooled features and the
    # output layer; the last one's output is the penultimate feature vector.
    head_sizes: list[PositiveInt] = Field(default_factory=lambda: [2048])
    dropout: float = Field(0.3, ge=0.0, lt=1.0)


def frame_inputs(
    batch: dict[str, torch.Tensor], names: list[str], norm: InputNorm
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The selected (B, T, D) features, normalised, with padding set to exactly zero, and
    the (B, T) bool mask. Zeroing here means no model depends on what the loader (or mixup)
    left in the padding."""
    if FRAME_MASK not in batch:
        raise KeyError(f"a frame-level model needs {FRAME_MASK!r} in the batch; got {list(batch)}")
    mask = batch[FRAME_MASK].bool()
    if mask.dim() != 2:
        raise ValueError(f"{FRAME_MASK} must be (batch, frames), got shape {tuple(mask.shape)}")
    features = gather_inputs(batch, names, norm)
    for name, x in zip(names, features):
        if x.dim() != 3 or x.shape[:2] != mask.shape:
            raise ValueError(
                f"frame feature {name!r} has shape {tuple(x.shape)}; expected "
                f"(batch, frames, dim) matching {FRAME_MASK} {tuple(mask.shape)}"
            )
    return [x.masked_fill(~mask[..., None], 0.0) for x in features], mask


def frame_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Real frames per video, (B,) int64."""
    return mask.sum(dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real frames: (B, T, D), (B, T) -> (B, D)."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over real frames: (B, T, D), (B, T) -> (B, D); 0 for a video without frames."""
    filled = x.masked_fill(~mask[..., None], -math.inf)
    pooled = filled.amax(dim=1)
    return torch.where(mask.any(dim=1, keepdim=True), pooled, torch.zeros_like(pooled))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over time (dim 1) of (B, T, ...) scores, zero on padding. A finite fill
    instead of -inf keeps a fully masked row finite (all zeros) instead of NaN."""
    while mask.dim() < scores.dim():
        mask = mask[..., None]
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=1) * mask.to(scores.dtype)


def masked_top_k(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest values over real frames, descending: (B, T, C) -> (B, k, C). A video
    with fewer than k frames repeats its smallest real value in the missing places, so
    its result does not depend on how much padding follows it."""
    batch, frames, channels = x.shape
    if frames < k:  # topk needs k <= T; extra padding frames are masked out anyway
        x = functional.pad(x, (0, 0, 0, k - frames))
        mask = functional.pad(mask, (0, k - frames), value=False)
    filled = x.masked_fill(~mask[..., None], -math.inf)
    top = filled.topk(k, dim=1).values
    count = frame_lengths(mask).clamp(min=1, max=k)
    smallest = top.gather(1, (count - 1).view(batch, 1, 1).expand(batch, 1, channels))
    real = torch.arange(k, device=x.device)[None, :] < count[:, None]
    return torch.where(real[..., None], top, smallest)


def apply_to_frames(
    module: nn.Module, x: torch.Tensor, mask: torch.Tensor, out_dim: int
) -> torch.Tensor:
    """Run a per-frame module on the real frames only: (B, T, D) -> (B, T, out_dim), zero on
    padding. Padding never reaches the module, so BatchNorm's batch statistics are those of
    real frames and no compute is spent on padding."""
    real = module(x[mask])
    out = real.new_zeros(mask.shape[0], mask.shape[1], out_dim)
    return out.index_put((mask,), real)


def fc_head(in_dim: int, sizes: list[int], dropout: float) -> tuple[nn.Sequential, int]:
    """FC blocks of the given widths after ``in_dim`` features; returns them and the final
    width (``in_dim`` when ``sizes`` is empty)."""
    blocks = []
    for size in sizes:
        blocks.append(FCBlock(in_dim, size, dropout))
        in_dim = size
    return nn.Sequential(*blocks), in_dim


class FrameClassifier(Classifier):
    """A frame-level model whose final layer is one Linear (``self.output``) over the
    penultimate features. Subclasses build their body, call :meth:`_set_output` and
    implement :meth:`penultimate`."""

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: FrameInputParams
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.params = params
        self.modalities = select_modalities(feature_dims, params.inputs)

    def frames(self, inputs: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The model's modalities (in ``self.modalities`` order) and the frame mask."""
        return frame_inputs(inputs, list(self.modalities), self.params.input_norm)

    def _set_output(self, penultimate_dim: int) -> None:
        self.penultimate_dim = penultimate_dim
        self.output = nn.Linear(penultimate_dim, self.num_classes)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(features)

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        copy_into(self.output.bias, prior_logits)


def masked_pool_time(
    x: torch.Tensor, mask: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-pool over time in windows of ``size`` frames, stride ``size``: (B, T, C) ->
    (B, ceil(T / size), C) and the pooled mask (a window is real if any frame in it is).
    A window that straddles a video's end takes the max of its real frames only, as it
    would for the video alone; windows of padding are zero."""
    batch, frames, channels = x.shape
    extra = (-frames) % size
    if extra:
        x = functional.pad(x, (0, 0, 0, extra))
        mask = functional.pad(mask, (0, extra), value=False)
    windows = x.masked_fill(~mask[..., None], -math.inf).view(batch, -1, size, channels)
    pooled_mask = mask.view(batch, -1, size).any(dim=2)
    return windows.amax(dim=2).masked_fill(~pooled_mask[..., None], 0.0), pooled_mask
