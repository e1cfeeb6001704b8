"""The paper's main first-level model: the ResNet-like network of Fig. 3 (after n01z3's
kaggle_yt8m).

Per modality: an FC block to ``inner_size`` and ``av_id_block_num`` identity blocks; the
modalities concatenated; ``concat_id_block_num`` identity blocks over the concatenation; an
FC block to ``inner_size``; optionally a narrow linear ``bottleneck``; the output layer.
FC block = Linear, BatchNorm1d, LeakyReLU, Dropout. Identity block = FC block and a Linear
back to the block's width, added to its input, then LeakyReLU.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from yt8mkit.models.inputs import InputParams, VideoClassifier
from yt8mkit.models.layers import ContextGating, FCBlock, IdentityBlock
from yt8mkit.models.registry import register_model


class ResNetLikeParams(InputParams):
    """Defaults are the paper's (inner size 2048, one identity block each, dropout 0.5)."""

    inner_size: int = Field(2048, ge=1)
    av_id_block_num: int = Field(1, ge=0)
    concat_id_block_num: int = Field(1, ge=0)
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    context_gating: bool = False
    # The paper's "Bottleneck 4 neurons": a linear layer this narrow before the output, so
    # every prediction is a function of ``bottleneck`` numbers (the penultimate features).
    bottleneck: int | None = Field(None, ge=1)


@register_model("resnet_like", params=ResNetLikeParams)
class ResNetLike(VideoClassifier):
    params: ResNetLikeParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: ResNetLikeParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        inner, dropout = params.inner_size, params.dropout
        # ModuleDict keys are the feature names; the order used is ``self.modalities``'.
        self.towers = nn.ModuleDict({
            name: nn.Sequential(
                FCBlock(width, inner, dropout),
                *(IdentityBlock(inner, inner, dropout) for _ in range(params.av_id_block_num)),
            )
            for name, width in self.modalities.items()
        })
        concat = inner * len(self.modalities)
        self.trunk = nn.Sequential(
            *(IdentityBlock(concat, inner, dropout) for _ in range(params.concat_id_block_num)),
            FCBlock(concat, inner, dropout),
        )
        self.bottleneck = nn.Linear(inner, params.bottleneck) if params.bottleneck else None
        self.penultimate_dim = params.bottleneck or inner
        self.output = nn.Linear(self.penultimate_dim, num_classes)
        self.gating = ContextGating(num_classes) if params.context_gating else None

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        towers = [self.towers[n](x) for n, x in zip(self.modalities, self.features(inputs))]
        hidden = self.trunk(torch.cat(towers, dim=1))
        return self.bottleneck(hidden) if self.bottleneck is not None else hidden

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.output(features)
        return self.gating(logits) if self.gating is not None else logits

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        if self.gating is not None:
            prior_logits = self.gating.split_prior(prior_logits)
        super().init_output_bias(prior_logits)
