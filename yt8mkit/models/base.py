"""The contract every registered classifier keeps, and output-bias initialisation.

``forward(inputs) == classify(penultimate(inputs))``: ``penultimate`` gives the features
that feed the final layer (distillation freezes them and trains a new head on their
concatenation), ``classify`` turns such features into logits. Logits, never probabilities:
the trainer applies the sigmoid (inside BCE-with-logits, or for prediction).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Frequencies are clipped so that a class absent from a small training split gets a finite
# (very negative) bias rather than -inf.
DEFAULT_PRIOR_EPS = 1e-5


class Classifier(nn.Module):
    """Base class of the registered models: a feature extractor and a head."""

    num_classes: int
    penultimate_dim: int

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features (B, penultimate_dim) that feed the final layer."""
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) from penultimate features."""
        raise NotImplementedError

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classify(self.penultimate(inputs))

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        """Set the head so that, with zero penultimate contribution, sigmoid(logit) equals
        sigmoid(prior_logits). Subclasses with a plain linear head just copy the bias."""
        raise NotImplementedError


def frequency_logits(label_frequencies: np.ndarray, eps: float = DEFAULT_PRIOR_EPS) -> torch.Tensor:
    """logit(clip(freq, eps, 1 - eps)) as a float32 tensor; checks the frequencies."""
    freqs = np.asarray(label_frequencies, dtype=np.float64)
    if freqs.ndim != 1:
        raise ValueError(f"label frequencies must be 1-D, got shape {freqs.shape}")
    if not np.all(np.isfinite(freqs)) or freqs.min(initial=0.0) < 0 or freqs.max(initial=0.0) > 1:
        raise ValueError("label frequencies must be finite and within [0, 1]")
    clipped = np.clip(freqs, eps, 1.0 - eps)
    return torch.from_numpy(np.log(clipped) - np.log1p(-clipped)).float()


def init_output_bias(
    model: nn.Module, label_frequencies: np.ndarray, eps: float = DEFAULT_PRIOR_EPS
) -> None:
    """Start ``model`` at the label prior: sigmoid(output) = frequency when the features say
    nothing. On small data this is worth a lot: the network need not spend its first steps
    learning that nearly every label is absent."""
    if not isinstance(model, Classifier):
        raise TypeError(f"init_output_bias needs a registered Classifier, got {type(model)}")
    prior = frequency_logits(label_frequencies, eps)
    if prior.numel() != model.num_classes:
        raise ValueError(
            f"{prior.numel()} label frequencies for a model with {model.num_classes} classes"
        )
    with torch.no_grad():
        model.init_output_bias(prior)


def copy_into(parameter: torch.Tensor, values: torch.Tensor) -> None:
    """Copy ``values`` into a parameter in place, on its device and dtype."""
    with torch.no_grad():
        parameter.copy_(values.to(device=parameter.device, dtype=parameter.dtype))
