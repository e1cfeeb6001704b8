"""Building blocks shared by the models: fully connected and identity (residual) blocks,
context gating on the output, and stable conversions between log-probabilities and logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

# Largest log-probability kept below 0 so that log(1 - p) stays finite (logit <= ~16 in fp32).
_MAX_LOG_PROB = -1e-7


class FCBlock(nn.Sequential):
    """Linear -> BatchNorm1d -> LeakyReLU -> Dropout."""

    def __init__(self, in_features: int, out_features: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(in_features, out_features),
            nn.BatchNorm1d(out_features),
            nn.LeakyReLU(),
            nn.Dropout(dropout),
        )


class IdentityBlock(nn.Module):
    """Residual block: x -> leaky_relu(x + Linear(FCBlock(x))), width ``outer`` kept."""

    def __init__(self, outer: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.inner = FCBlock(outer, hidden, dropout)
        self.back = nn.Linear(hidden, outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.leaky_relu(x + self.back(self.inner(x)))


def log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(log_p)) for log_p < 0, accurate at both ends (Mächler's switch at -ln 2)."""
    log_p = log_p.clamp(max=_MAX_LOG_PROB)
    return torch.where(
        log_p > -math.log(2.0),
        torch.log(-torch.expm1(log_p)),
        torch.log1p(-torch.exp(log_p)),
    )


def logit_from_log_prob(log_p: torch.Tensor) -> torch.Tensor:
    """logit(p) = log p - log(1 - p) from log p, without forming p."""
    return log_p.clamp(max=_MAX_LOG_PROB) - log1mexp(log_p)


class ContextGating(nn.Module):
    """Context gating of the output probabilities (Miech et al., "Learnable pooling with
    context gating"): y = p * sigmoid(W p + b), p = sigmoid(logits), so the score of a class
    is damped by what the other classes' scores say. Computed in log space and returned as
    logit(y).

    Gating the logits themselves (as the authors' code did) would pull every score towards
    p = 0.5 instead; here the gate can only lower a probability, as in the paper.
    """

    # The gate starts open (sigmoid(4) = 0.98, W = 0): turning gating on does not change the
    # model at initialisation, and the output-bias prior stays exact.
    OPEN_BIAS = 4.0

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.gate = nn.Linear(num_classes, num_classes)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, self.OPEN_BIAS)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        gate_logits = self.gate(torch.sigmoid(logits))
        log_gated = functional.logsigmoid(logits) + functional.logsigmoid(gate_logits)
        return logit_from_log_prob(log_gated)

    def split_prior(self, prior_logits: torch.Tensor) -> torch.Tensor:
        """Share a prior between the gate and the logits before it: sets the gate's bias and
        returns the pre-gate logits, so that while the gate weights are zero (as built) the
        gated output is ``prior_logits``. The gate stays at its open bias unless a class is
        more frequent than that bias lets through; such a class gets sqrt(f) on each side."""
        log_f = functional.logsigmoid(prior_logits.float())
        open_log_gate = functional.logsigmoid(torch.tensor(self.OPEN_BIAS))
        log_gate = torch.maximum(open_log_gate, 0.5 * log_f)
        with torch.no_grad():
            self.gate.bias.copy_(logit_from_log_prob(log_gate).to(self.gate.bias))
        return logit_from_log_prob(log_f - log_gate)
