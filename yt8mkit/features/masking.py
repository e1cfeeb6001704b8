"""Reading a frame batch and pooling over real frames only.

The frame mask is (B, T) bool, True on real frames; padding may hold anything (zeros from
the loader, mixtures after mixup), so every helper here ignores its content.
"""

from __future__ import annotations

import torch

from yt8mkit.features.registry import FRAME_MASK


def frame_tensors(
    batch: dict[str, torch.Tensor], names: list[str]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The (B, T, D) float features ``names`` with padding zeroed, and the (B, T) mask
    (all True when the batch has none)."""
    missing = [n for n in names if n not in batch]
    if missing:
        raise KeyError(f"the representation reads {names} but the batch lacks {missing}")
    first = batch[names[0]]
    if first.dim() != 3:
        raise ValueError(f"frame feature {names[0]!r} must be (batch, frames, dim), got "
                         f"shape {tuple(first.shape)}")
    mask = batch.get(FRAME_MASK)
    if mask is None:
        mask = torch.ones(first.shape[:2], dtype=torch.bool, device=first.device)
    mask = mask.bool()
    tensors = []
    for name in names:
        x = batch[name]
        if x.dim() != 3 or x.shape[:2] != mask.shape:
            raise ValueError(f"frame feature {name!r} has shape {tuple(x.shape)}; expected "
                             f"(batch, frames, dim) matching the mask {tuple(mask.shape)}")
        x = x if x.is_floating_point() else x.float()
        tensors.append(x.masked_fill(~mask[..., None], 0.0))
    return tensors, mask


def lengths(mask: torch.Tensor) -> torch.Tensor:
    """Real frames per video, (B,) int64."""
    return mask.sum(dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real frames, (B, T, D) -> (B, D); 0 for a video without frames."""
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population standard deviation (ddof=0, as numpy's default) over real frames; ddof=1
    would be undefined for one-frame videos."""
    w = mask.to(x.dtype)[..., None]
    mean = masked_mean(x, mask)
    var = (((x - mean[:, None]) * w) ** 2).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
    return var.clamp(min=0.0).sqrt()


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over real frames; 0 for a video without frames."""
    filled = x.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
    return torch.where(mask.any(dim=1, keepdim=True), filled, torch.zeros_like(filled))


def masked_min(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Min over real frames; 0 for a video without frames."""
    return -masked_max(-x, mask)


def gather_frames(x: torch.Tensor, index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Frames ``index`` (B, K) of x (B, T, D) -> (B, K, D), zero where not ``valid``."""
    picked = x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))
    return picked.masked_fill(~valid[..., None], 0.0)
