"""The official starter's logistic model: one linear layer over the concatenated inputs.

The starter's L2 weight penalty (1e-8) is left to the optimiser's weight decay.
"""

from __future__ import annotations

import torch
from torch import nn

from yt8mkit.models.inputs import InputParams, VideoClassifier
from yt8mkit.models.registry import register_model


class LogisticParams(InputParams):
    """Only the input selection and normalisation."""


@register_model("logistic", params=LogisticParams)
class Logistic(VideoClassifier):
    params: LogisticParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: LogisticParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        # The penultimate features are the (normalised, concatenated) inputs themselves.
        self.penultimate_dim = self.input_width
        self.output = nn.Linear(self.penultimate_dim, num_classes)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.concatenated(inputs)
