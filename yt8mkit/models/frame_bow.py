"""Learnable bag of words with a trainable power (paper, section 3: "VLAD-BOW + learnable
power", GAP 0.83959; the learnt power was p = 0.628).

Per modality, every real frame x_i is softly assigned to K clusters,

    y_i = [W x_i + b]_+ ^ p,    a_k(y_i) = exp(y_ik) / sum_j exp(y_ij),

and the assignments are summed over the real frames: BOW(k) = sum_i a_k(y_i) (or averaged,
with ``normalize``). The per-modality BOWs feed the ResNet-like network (as the authors'
code did). The power p is one trainable scalar shared by the modalities, kept positive as
softplus of a free parameter. The authors' code trained no power at all (its default was
a plain soft bag of words); this is the model the paper describes.

x^p has an infinite slope at 0 for p < 1, and d(x^p)/dp = x^p ln x is undefined there; we
use x^p exactly for x >= eps and the straight line x eps^(p-1) from 0 to eps^p below, so the
value is continuous and its gradients in x and p are finite everywhere.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional

from yt8mkit.models.frame_common import FrameClassifier, FrameInputParams
from yt8mkit.models.registry import register_model
from yt8mkit.models.resnet_like import ResNetLike, ResNetLikeParams

POWER_EPS = 1e-4


class VladBowParams(FrameInputParams):
    """Cluster count and head sizes follow the authors' code (1000 clusters, a ResNet-like
    head of inner size 1024, dropout 0.4)."""

    clusters: int = Field(1000, ge=1)
    power_init: float = Field(1.0, gt=0.0, le=20.0)
    learn_power: bool = True
    # Divide each BOW by the video's frame count: the paper sums.
    normalize: bool = False
    bow_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    inner_size: int = Field(1024, ge=1)
    av_id_block_num: int = Field(1, ge=0)
    concat_id_block_num: int = Field(1, ge=0)
    dropout: float = Field(0.4, ge=0.0, lt=1.0)


def positive_power(x: torch.Tensor, power: torch.Tensor, eps: float = POWER_EPS) -> torch.Tensor:
    """[x]_+ ^ power with finite gradients at 0 (see the module docstring)."""
    exact = torch.pow(x.clamp(min=eps), power)
    return torch.where(x >= eps, exact, functional.relu(x) * eps ** (power - 1))


@register_model("vlad_bow", params=VladBowParams, kind="frame")
class VladBow(FrameClassifier):
    params: VladBowParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: VladBowParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        self.assign = nn.ModuleDict({
            name: nn.Linear(width, params.clusters) for name, width in self.modalities.items()
        })
        # softplus(raw) = power_init; as a buffer when the power is fixed.
        raw = torch.tensor(math.log(math.expm1(params.power_init)), dtype=torch.float32)
        if params.learn_power:
            self.raw_power = nn.Parameter(raw)
        else:
            self.register_buffer("raw_power", raw)
        self.bow_dropout = nn.Dropout(params.bow_dropout)
        self.resnet = ResNetLike(
            num_classes,
            dict.fromkeys(self.modalities, params.clusters),
            ResNetLikeParams(
                input_norm="none", inner_size=params.inner_size,
                av_id_block_num=params.av_id_block_num,
                concat_id_block_num=params.concat_id_block_num, dropout=params.dropout,
            ),
        )
        self.penultimate_dim = self.resnet.penultimate_dim

    @property
    def power(self) -> torch.Tensor:
        """The current power p (> 0)."""
        return functional.softplus(self.raw_power)

    # Read-only here: the head owns the layer.
    @property
    def output(self) -> nn.Linear:  # type: ignore[override]
        """The final layer (the head's)."""
        return self.resnet.output

    def bags(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's bag of words, (B, clusters)."""
        features, mask = self.frames(inputs)
        weights = mask.to(features[0].dtype)[..., None]
        if self.params.normalize:
            weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
        power = self.power
        bags = {}
        for name, x in zip(self.modalities, features):
            assignment = torch.softmax(positive_power(self.assign[name](x), power), dim=-1)
            bags[name] = (assignment * weights).sum(dim=1)
        return bags

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        bags = {name: self.bow_dropout(bag) for name, bag in self.bags(inputs).items()}
        return self.resnet.penultimate(bags)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.resnet.classify(features)

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        self.resnet.init_output_bias(prior_logits)
