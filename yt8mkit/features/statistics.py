"""Frame statistics (paper, Sec. 2): per dimension, over each video's real frames, the
mean, standard deviation, median, minimum, maximum and mode, plus the video's length;
concatenated in the configured order.

Definitions (numpy's where numpy has one):

- ``std``: population standard deviation (ddof=0).
- ``median``: the mean of the two middle values for an even number of frames.
- ``mode``: per dimension, the most frequent of the 256 quantization levels. Values are
  re-quantized with the store's rule (``quantize``: nearest level over [-2, 2], clipped),
  so for dequantized frames the level is the stored uint8 code exactly; the output is that
  level's dequantized value; ties go to the lowest level.
- ``length``: real frames / ``length_scale``, one column appended to every modality's
  vector (so a model reading one modality still sees it; alone, a 1-wide input would be
  destroyed by a per-input L2 normalisation).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator

from yt8mkit.data.quantize import BIAS, SCALAR
from yt8mkit.features.base import Representation
from yt8mkit.features.masking import (
    frame_tensors,
    lengths,
    masked_max,
    masked_mean,
    masked_min,
    masked_std,
)
from yt8mkit.features.registry import (
    RepresentationParams,
    register_representation,
)

Statistic = Literal["mean", "std", "median", "min", "max", "mode", "length"]
ALL_STATISTICS: tuple[Statistic, ...] = ("mean", "std", "median", "min", "max", "mode", "length")


class StatisticsParams(RepresentationParams):
    stats: list[Statistic] = Field(default_factory=lambda: list(ALL_STATISTICS))
    # 300 frames is YouTube-8M's maximum, so the length column stays within [0, 1].
    length_scale: float = Field(300.0, gt=0.0)

    @field_validator("stats")
    @classmethod
    def _distinct(cls, value: list[Statistic]) -> list[Statistic]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"stats must be a non-empty list without repeats, got {value}")
        return value


def masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Median over real frames (numpy's: mean of the middle two); 0 without frames."""
    ordered = x.masked_fill(~mask[..., None], float("inf")).sort(dim=1).values
    return _median_of_sorted(ordered, lengths(mask))


def _median_of_sorted(ordered: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    count = n.clamp(min=1)
    low = ordered.gather(1, ((count - 1) // 2).view(-1, 1, 1).expand(-1, 1, ordered.shape[2]))
    high = ordered.gather(1, (count // 2).view(-1, 1, 1).expand(-1, 1, ordered.shape[2]))
    median = ((low + high) / 2).squeeze(1)
    return torch.where((n > 0)[:, None], median, torch.zeros_like(median))


def quantize_levels(x: torch.Tensor) -> torch.Tensor:
    """``yt8mkit.data.quantize.quantize`` in torch: the nearest of the 256 levels, int64."""
    return torch.round((x - float(BIAS)) / float(SCALAR)).clamp(0, 255).long()


def masked_mode(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Most frequent quantization level over real frames (see the module docstring)."""
    ordered = x.masked_fill(~mask[..., None], float("inf")).sort(dim=1).values
    return _mode_of_sorted(ordered, lengths(mask))


def _mode_of_sorted(ordered: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    # Quantizing is monotone, so sorted values give sorted levels, and equal levels are
    # runs: the mode is the level of the longest run. Run lengths come from the position
    # where each run starts (a running max of run-start positions).
    codes = quantize_levels(ordered)
    frames = codes.shape[1]
    t = torch.arange(frames, device=codes.device).view(1, -1, 1)
    starts = torch.ones_like(codes, dtype=torch.bool)
    starts[:, 1:] = codes[:, 1:] != codes[:, :-1]
    run_start = torch.where(starts, t, torch.zeros_like(codes)).cummax(dim=1).values
    run_length = torch.where(t < n.view(-1, 1, 1), t - run_start + 1, torch.zeros_like(codes))
    # argmax returns the first maximum: the end of the lowest of the longest runs.
    best = run_length.argmax(dim=1, keepdim=True)
    level = codes.gather(1, best).squeeze(1).to(ordered.dtype)
    mode = level * float(SCALAR) + float(BIAS)
    return torch.where((n > 0)[:, None], mode, torch.zeros_like(mode))


@register_representation("statistics", params=StatisticsParams)
class FrameStatistics(Representation):
    def __init__(self, feature_dims: dict[str, int], params: StatisticsParams) -> None:
        super().__init__(feature_dims)
        self.params = params
        per_dim = sum(1 for s in params.stats if s != "length")
        extra = 1 if "length" in params.stats else 0
        self.output_dims = {m: per_dim * d + extra for m, d in self.feature_dims.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        names = list(self.feature_dims)
        tensors, mask = frame_tensors(batch, names)
        n = lengths(mask)
        wanted = self.params.stats
        out = {}
        for name, x in zip(names, tensors):
            ordered = None
            if "median" in wanted or "mode" in wanted:
                ordered = x.masked_fill(~mask[..., None], float("inf")).sort(dim=1).values
            parts = []
            for stat in wanted:
                if stat == "mean":
                    parts.append(masked_mean(x, mask))
                elif stat == "std":
                    parts.append(masked_std(x, mask))
                elif stat == "median":
                    assert ordered is not None
                    parts.append(_median_of_sorted(ordered, n))
                elif stat == "min":
                    parts.append(masked_min(x, mask))
                elif stat == "max":
                    parts.append(masked_max(x, mask))
                elif stat == "mode":
                    assert ordered is not None
                    parts.append(_mode_of_sorted(ordered, n))
            if "length" in wanted:
                parts.append((n.to(x.dtype) / self.params.length_scale)[:, None])
            out[name] = torch.cat(parts, dim=1)
        return out
