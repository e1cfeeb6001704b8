"""Mixup (Zhang et al., 2018) on a batch: x = λ x_i + (1 - λ) x_j, y = λ y_i + (1 - λ) y_j,
λ ~ Beta(α, α), j a random permutation of the batch (the paper: α = 0.4; its best
ResNet-like used 0.3).

Every input tensor of the batch (all modalities) is mixed with the same λ and the same
partner, so a mixed video stays one video. λ is one per batch by default, as in Zhang et
al.'s reference code; ``per_sample=True`` draws one per video, as the authors' code did
(which also took the previous batch as the partner instead of a permutation, and drew
from numpy's global RNG; here every draw comes from the generator passed in, so a run is
reproducible on CPU).

Boolean tensors (frame masks) are not averaged: a mixed video's frame is valid where
either partner's frame is.
"""

from __future__ import annotations

import numpy as np
import torch


def sample_lambda(
    alpha: float, size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``size`` draws of Beta(α, α), float32 on CPU, seeded from ``generator``.

    torch's Beta sampler cannot take a generator, so the generator seeds a numpy one."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    draws = np.random.default_rng(seed).beta(alpha, alpha, size=size)
    return torch.from_numpy(draws.astype(np.float32))


def mix_tensor(x: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """λ x + (1 - λ) partner, λ of shape () or (B,) broadcast over x's trailing dimensions."""
    if x.dtype == torch.bool:
        return x | partner
    if not x.is_floating_point():
        raise TypeError(f"mixup cannot mix a tensor of dtype {x.dtype}")
    lam = lam.to(device=x.device, dtype=x.dtype)
    if lam.ndim == 1:
        lam = lam.view(-1, *([1] * (x.ndim - 1)))
    return lam * x + (1 - lam) * partner


def mixup(
    inputs: dict[str, torch.Tensor],
    targets: torch.Tensor,
    alpha: float,
    generator: torch.Generator | None = None,
    per_sample: bool = False,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Mixed (inputs, targets); α <= 0 returns them unchanged without drawing."""
    if alpha <= 0:
        return inputs, targets
    batch = targets.shape[0]
    for name, tensor in inputs.items():
        if tensor.shape[0] != batch:
            raise ValueError(f"input {name!r} has {tensor.shape[0]} rows, targets {batch}")
    partner = torch.randperm(batch, generator=generator)
    lam = sample_lambda(alpha, batch if per_sample else 1, generator)
    if not per_sample:
        lam = lam[0]
    index = partner.to(targets.device)
    mixed = {
        name: mix_tensor(tensor, tensor[partner.to(tensor.device)], lam)
        for name, tensor in inputs.items()
    }
    return mixed, mix_tensor(targets.float(), targets.float()[index], lam)
