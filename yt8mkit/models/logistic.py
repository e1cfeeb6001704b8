"""The official starter's logistic model: one linear layer over the concatenated inputs.

The starter's L2 weight penalty (1e-8) is left to the optimiser's weight decay.
"""

from __future__ import annotations

import torch
from torch import nn

from yt8mkit.models.base import Classifier, copy_into
from yt8mkit.models.inputs import InputParams, gather_inputs, select_modalities
from yt8mkit.models.registry import register_model


class LogisticParams(InputParams):
    """Only the input selection and normalisation."""


@register_model("logistic", params=LogisticParams)
class Logistic(Classifier):
    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: LogisticParams
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.params = params
        self.modalities = select_modalities(feature_dims, params.inputs)
        # The penultimate features are the (normalised, concatenated) inputs themselves.
        self.penultimate_dim = sum(self.modalities.values())
        self.output = nn.Linear(self.penultimate_dim, num_classes)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features = gather_inputs(inputs, list(self.modalities), self.params.input_norm)
        return torch.cat(features, dim=1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(features)

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        copy_into(self.output.bias, prior_logits)
