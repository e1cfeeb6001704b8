"""The distillation students: plain fully connected networks over the video-level
features, trained on the ensemble's soft labels. Several depths, widths and activations
give the final model diverse frozen features to combine (slides: "small ensemble (6
models) trained on the out-of-fold soft labels").

Hidden layer = Linear, optional BatchNorm1d, activation, Dropout. The penultimate features
are the last hidden layer's output (the normalised inputs themselves when depth = 0).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from yt8mkit.models.inputs import InputParams, VideoClassifier
from yt8mkit.models.registry import register_model

Activation = Literal["relu", "leaky_relu", "swish", "silu"]


class StudentMlpParams(InputParams):
    depth: int = Field(2, ge=0, description="hidden layers")
    width: int = Field(1024, ge=1)
    activation: Activation = "relu"
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    batchnorm: bool = True


def make_activation(name: Activation) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU()
    return nn.SiLU()  # swish with beta = 1 is SiLU


@register_model("student_mlp", params=StudentMlpParams)
class StudentMlp(VideoClassifier):
    params: StudentMlpParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: StudentMlpParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        layers: list[nn.Module] = []
        width = self.input_width
        for _ in range(params.depth):
            layers.append(nn.Linear(width, params.width))
            if params.batchnorm:
                layers.append(nn.BatchNorm1d(params.width))
            layers += [make_activation(params.activation), nn.Dropout(params.dropout)]
            width = params.width
        self.hidden = nn.Sequential(*layers)
        self.penultimate_dim = width
        self.output = nn.Linear(width, num_classes)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.hidden(self.concatenated(inputs))
