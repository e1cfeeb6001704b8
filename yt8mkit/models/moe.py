"""The official starter's mixture of (logistic) experts.

Per class, a softmax gate over ``num_mixtures + 1`` experts, the extra "dummy" expert always
predicting 0, and sigmoid experts: p = sum_m gate_m * sigmoid(expert_m). Our contract is
logits, so the model returns logit(p), computed exactly in log space:
log p = logsumexp_m(log gate_m + log sigmoid(e_m)) and, because the gates sum to one,
log(1 - p) = logsumexp(log gate_dummy, log gate_m + log sigmoid(-e_m)). Neither side forms
p, so no clamping is needed and sigmoid(logits) is p to float precision.

One deviation from the starter: the gate layer has a bias (zero at construction, so the
initial model is the starter's). Without it the label prior could not be put in the gates,
and with a dummy expert taking 1/(M+1) of the mass the experts alone cannot reach it.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional

from yt8mkit.models.base import copy_into
from yt8mkit.models.inputs import InputParams, VideoClassifier
from yt8mkit.models.layers import logit_from_log_prob
from yt8mkit.models.registry import register_model


class MoeParams(InputParams):
    """The number of real experts per class (the dummy expert comes on top)."""

    num_mixtures: int = Field(2, ge=1)


@register_model("moe", params=MoeParams)
class MixtureOfExperts(VideoClassifier):
    params: MoeParams

    def __init__(self, num_classes: int, feature_dims: dict[str, int], params: MoeParams) -> None:
        super().__init__(num_classes, feature_dims, params)
        self.penultimate_dim = self.input_width
        mixtures = params.num_mixtures
        # Layout (class, expert): class c's gates are columns c*(M+1) .. c*(M+1)+M, the
        # dummy expert last.
        self.gates = nn.Linear(self.penultimate_dim, num_classes * (mixtures + 1))
        nn.init.zeros_(self.gates.bias)
        self.experts = nn.Linear(self.penultimate_dim, num_classes * mixtures)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.concatenated(inputs)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        batch, mixtures = features.shape[0], self.params.num_mixtures
        log_gates = functional.log_softmax(
            self.gates(features).view(batch, self.num_classes, mixtures + 1), dim=-1
        )
        expert_logits = self.experts(features).view(batch, self.num_classes, mixtures)
        real, dummy = log_gates[..., :mixtures], log_gates[..., mixtures:]
        log_p = torch.logsumexp(real + functional.logsigmoid(expert_logits), dim=-1)
        log_not_p = torch.logsumexp(
            torch.cat([dummy, real + functional.logsigmoid(-expert_logits)], dim=-1), dim=-1
        )
        return log_p - log_not_p

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        """Biases such that, with zero weights, p = sigmoid(prior). With uniform gates the
        experts must say q = f (M+1)/M; that works while q is comfortably below 1, beyond
        (f > (M/(M+1))^2) the experts say sqrt(f) and the dummy's gate shrinks to match."""
        mixtures = self.params.num_mixtures
        log_f = functional.logsigmoid(prior_logits.float())
        log_s = torch.minimum(log_f + math.log((mixtures + 1) / mixtures), 0.5 * log_f)
        # M s / (M + exp(d)) = f  <=>  d = log M + log(s / f - 1)
        dummy_bias = math.log(mixtures) + torch.log(torch.expm1(log_s - log_f))
        gate_bias = torch.zeros(self.num_classes, mixtures + 1)
        gate_bias[:, mixtures] = dummy_bias
        copy_into(self.gates.bias, gate_bias.view(-1))
        expert_bias = logit_from_log_prob(log_s)[:, None].expand(-1, mixtures)
        copy_into(self.experts.bias, expert_bias.reshape(-1))
