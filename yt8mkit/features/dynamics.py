"""What changes in a video rather than what it statically shows (paper, Sec. 2; it found
none of these better than 0.5 GAP, kept for comparison and for ensemble diversity):

- ``mean_removal``: each frame minus the video's mean frame;
- ``wavelet``: the detail coefficients of a discrete wavelet transform over time (db3 by
  default, the high-pass half of the filter bank), at a chosen level; exactly
  ``pywt.wavedec(x, wavelet, mode="symmetric", axis=0)``'s detail at that level, computed
  in torch on each video's real frames;
- ``pcp``: the sparse component S of principal component pursuit (robust PCA, X = L + S
  with L low-rank and S sparse; Candès et al. 2011), solved per video and modality by the
  inexact augmented Lagrange multiplier method (Lin, Chen & Ma 2010).

Each is pooled over time into a video-level vector per modality (mean, mean absolute
value, max; concatenated in the configured order).
"""

from __future__ import annotations

from typing import Literal

import pywt
import torch
from pydantic import Field, field_validator
from torch.nn import functional

from yt8mkit.features.base import Representation
from yt8mkit.features.masking import frame_tensors, lengths, masked_max, masked_mean
from yt8mkit.features.registry import (
    RepresentationError,
    RepresentationParams,
    register_representation,
)

DynamicsMethod = Literal["mean_removal", "wavelet", "pcp"]
DynamicsPool = Literal["mean", "abs_mean", "max"]


class DynamicsParams(RepresentationParams):
    method: DynamicsMethod = "mean_removal"
    pool: list[DynamicsPool] = Field(
        default_factory=lambda: list[DynamicsPool](["abs_mean", "max"]))
    wavelet: str = "db3"
    level: int = Field(1, ge=1)
    # PCP: the sparse-term weight (None: the standard 1/sqrt(max(frames, dim))), the
    # relative residual at which a video's iteration stops, and an iteration cap.
    pcp_lambda: float | None = Field(None, gt=0.0)
    pcp_tol: float = Field(1e-5, gt=0.0)
    pcp_max_iter: int = Field(50, ge=1)

    @field_validator("pool")
    @classmethod
    def _distinct(cls, value: list[DynamicsPool]) -> list[DynamicsPool]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"pool must be a non-empty list without repeats, got {value}")
        return value

    @field_validator("wavelet")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in pywt.wavelist(kind="discrete"):
            raise ValueError(f"{value!r} is not a discrete wavelet of PyWavelets")
        return value


def remove_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each real frame minus the video's mean frame; padding stays zero."""
    return (x - masked_mean(x, mask)[:, None]) * mask.to(x.dtype)[..., None]


# ---------------------------------------------------------------- wavelet


def _symmetric_index(n: torch.Tensor, pad: int, frames: int) -> torch.Tensor:
    """Indices (B, frames + 2·pad) of PyWavelets' "symmetric" extension of each video's
    n real frames (half-sample reflection, repeated for signals shorter than the pad)."""
    p = torch.arange(-pad, frames + pad, device=n.device)[None, :]
    period = 2 * n.clamp(min=1)[:, None]
    q = torch.remainder(p, period)
    return torch.where(q >= period // 2, period - 1 - q, q)


def dwt_step(
    x: torch.Tensor, n: torch.Tensor, filt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DWT filtering of (B, T, D) over time with a decomposition filter (pywt's
    ``dec_lo`` or ``dec_hi``), "symmetric" mode: (coefficients (B, T', D) zero past each
    video's end, their counts floor((n + L - 1) / 2))."""
    _, frames, dim = x.shape
    taps = filt.numel()
    index = _symmetric_index(n, taps - 1, frames)
    extended = x.gather(1, index[..., None].expand(-1, -1, dim))
    # pywt's output i is the full convolution at 2i + 1: correlate with the reversed filter
    # from offset 1 with stride 2.
    weight = filt.flip(0).to(x.dtype).view(1, 1, taps).expand(dim, 1, taps)
    out = functional.conv1d(extended[:, 1:].transpose(1, 2), weight, stride=2, groups=dim)
    out = out.transpose(1, 2)
    count = torch.where(n > 0, torch.div(n + taps - 1, 2, rounding_mode="floor"), 0)
    valid = torch.arange(out.shape[1], device=x.device)[None, :] < count[:, None]
    return out * valid.to(out.dtype)[..., None], count


def wavelet_detail(
    x: torch.Tensor, mask: torch.Tensor, wavelet: str = "db3", level: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Detail coefficients at ``level`` of each video's real frames: (B, T', D) and their
    (B, T') mask. Expects real frames first (the frame batch contract)."""
    w = pywt.Wavelet(wavelet)
    lo = torch.tensor(w.dec_lo, dtype=x.dtype, device=x.device)
    hi = torch.tensor(w.dec_hi, dtype=x.dtype, device=x.device)
    n = lengths(mask)
    approx = x * mask.to(x.dtype)[..., None]
    for _ in range(level - 1):
        approx, n_next = dwt_step(approx, n, lo)
        n = n_next
    detail, count = dwt_step(approx, n, hi)
    valid = torch.arange(detail.shape[1], device=x.device)[None, :] < count[:, None]
    return detail, valid


# ---------------------------------------------------------------- PCP


def _shrink(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return x.sign() * (x.abs() - threshold).clamp(min=0.0)


def principal_component_pursuit(
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    lam: float | None = None,
    tol: float = 1e-7,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust PCA of each (T, D) matrix of a (B, T, D) batch (or of one (T, D) matrix):
    min ||L||_* + lam ||S||_1 subject to L + S = X over the real rows, by inexact ALM.
    Returns (L, S), zero on padding rows.

    lam defaults to 1/sqrt(max(rows, D)) with the video's real row count. Each matrix
    stops on its own once ||X - L - S||_F / ||X||_F < tol, so a video's result does not
    depend on the others in its batch. Zero rows stay zero through the iteration (their
    singular vectors vanish), so padding does not change the real rows' solution.
    """
    single = x.dim() == 2
    if single:
        x = x[None]
        mask = None if mask is None else mask[None]
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    rows = mask.to(x.dtype)[..., None]
    x = x * rows
    n = lengths(mask).to(x.dtype)
    dim = x.shape[2]
    lam_b = (
        torch.full_like(n, lam) if lam is not None else torch.maximum(n, n.new_tensor(dim)).rsqrt()
    )
    lam_b = lam_b.view(-1, 1, 1)
    norm_fro = torch.linalg.matrix_norm(x, ord="fro")
    norm_two = torch.linalg.matrix_norm(x, ord=2)
    norm_inf = x.abs().amax(dim=(1, 2))
    nonzero = norm_fro > 0
    safe_two = torch.where(nonzero, norm_two, torch.ones_like(norm_two))
    dual = torch.maximum(safe_two, norm_inf / lam_b.view(-1))
    y = x / dual.view(-1, 1, 1)
    mu = (1.25 / safe_two).view(-1, 1, 1)
    mu_max = mu * 1e7
    low = torch.zeros_like(x)
    sparse = torch.zeros_like(x)
    active = nonzero.clone()
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        step = active.view(-1, 1, 1)
        new_sparse = _shrink(x - low + y / mu, lam_b / mu) * rows
        u, s, vh = torch.linalg.svd(x - new_sparse + y / mu, full_matrices=False)
        s = (s - 1.0 / mu.view(-1, 1)).clamp(min=0.0)
        new_low = (u * s[:, None, :]) @ vh * rows
        residual = x - new_low - new_sparse
        sparse = torch.where(step, new_sparse, sparse)
        low = torch.where(step, new_low, low)
        y = torch.where(step, y + mu * residual, y)
        mu = torch.where(step, torch.minimum(mu * 1.5, mu_max), mu)
        error = torch.linalg.matrix_norm(residual, ord="fro") / torch.where(
            nonzero, norm_fro, torch.ones_like(norm_fro)
        )
        active = active & (error >= tol)
    if single:
        return low[0], sparse[0]
    return low, sparse


# ---------------------------------------------------------------- representation


def _pool(x: torch.Tensor, mask: torch.Tensor, how: DynamicsPool) -> torch.Tensor:
    if how == "mean":
        return masked_mean(x, mask)
    if how == "abs_mean":
        return masked_mean(x.abs(), mask)
    return masked_max(x, mask)


@register_representation("dynamics", params=DynamicsParams)
class FrameDynamics(Representation):
    def __init__(self, feature_dims: dict[str, int], params: DynamicsParams) -> None:
        super().__init__(feature_dims)
        if params.method == "mean_removal" and params.pool == ["mean"]:
            raise RepresentationError(
                "dynamics: the mean of mean-removed frames is zero; pool with abs_mean or max"
            )
        self.params = params
        self.output_dims = {m: len(params.pool) * d for m, d in self.feature_dims.items()}

    def dynamics(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The dynamic component of (B, T, D) frames and the mask of its time steps."""
        p = self.params
        if p.method == "mean_removal":
            return remove_mean(x, mask), mask
        if p.method == "wavelet":
            return wavelet_detail(x, mask, p.wavelet, p.level)
        with torch.no_grad():  # a fixed preprocessing: nothing upstream to train
            _, sparse = principal_component_pursuit(
                x, mask, lam=p.pcp_lambda, tol=p.pcp_tol, max_iter=p.pcp_max_iter
            )
        return sparse, mask

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors, mask = frame_tensors(batch, list(self.feature_dims))
        out = {}
        for name, x in zip(self.feature_dims, tensors):
            dyn, valid = self.dynamics(x, mask)
            out[name] = torch.cat([_pool(dyn, valid, how) for how in self.params.pool], dim=1)
        return out
