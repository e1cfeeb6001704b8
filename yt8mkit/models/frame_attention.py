"""Attention-based frame-level models (paper, section 3, "Attention-based frame-level
models").

``attention_net``: the stacked attention model. Layer i projects every frame, together
with the attention vectors of the layers before it, to ``hidden`` units (ReLU), scores the
frames with one linear unit, and takes the softmax-weighted mean over the real frames: one
attention vector per layer for the whole sequence. Each vector is appended to the feature
vector of every time step, and the steps are averaged (global average pooling); since the
appended vectors are the same at every step, that average is the frames' mean followed by
the attention vectors, which is how it is computed here.

``transformer_encoder``: the frames concatenated and projected to ``d_model``, optionally
plus sinusoidal position codes, stacked multi-head self-attention
(``torch.nn.TransformerEncoder``, padding masked out of the keys), pooled over the real
frames. The paper found the variant without position codes much better, hence the default.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn import functional

from yt8mkit.models.frame_common import (
    FrameClassifier,
    FrameHeadParams,
    fc_head,
    masked_max,
    masked_mean,
    masked_softmax,
)
from yt8mkit.models.registry import register_model


class AttentionNetParams(FrameHeadParams):
    """Layer count and width follow the authors' code (3 layers of 1024); the paper gives
    no sizes."""

    hidden: int = Field(1024, ge=1)
    layers: int = Field(3, ge=1)


@register_model("attention_net", params=AttentionNetParams, kind="frame")
class AttentionNet(FrameClassifier):
    params: AttentionNetParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: AttentionNetParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        frame_dim, hidden, layers = sum(self.modalities.values()), params.hidden, params.layers
        # Layer i's Linear over [frame; a_1 .. a_{i-1}] split in two: the frame part of all
        # layers is one matmul over (B, T), the context part a matmul over (B,) only, so
        # the per-step concatenation is never materialised.
        self.frame_proj = nn.Linear(frame_dim, hidden * layers)
        self.context_proj = nn.ModuleList(
            nn.Linear(hidden * i, hidden, bias=False) for i in range(1, layers)
        )
        self.scores = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(layers))
        self.head, width = fc_head(frame_dim + hidden * layers, params.head_sizes,
                                   params.dropout)
        self._set_output(width)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        x = torch.cat(features, dim=-1)
        frame_parts = self.frame_proj(x).chunk(self.params.layers, dim=-1)
        vectors: list[torch.Tensor] = []
        for i, frame_part in enumerate(frame_parts):
            pre = frame_part
            if vectors:
                pre = pre + self.context_proj[i - 1](torch.cat(vectors, dim=1))[:, None, :]
            hidden = functional.relu(pre)
            weights = masked_softmax(self.scores[i](hidden), mask)  # (B, T, 1)
            vectors.append((weights * hidden).sum(dim=1))
        return self.head(torch.cat([masked_mean(x, mask), *vectors], dim=1))


def sinusoid_codes(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """The Transformer's sine/cosine position codes, (length, dim); computed per batch, so
    no maximum length is built in."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rates = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * rates)
    codes[:, 1::2] = torch.cos(position * rates[: dim // 2])
    return codes


class TransformerEncoderParams(FrameHeadParams):
    """The paper gives no sizes; the authors' code used 4 heads and 2 layers over a small
    width (100); 256 is small too, and a multiple of the heads."""

    d_model: int = Field(256, ge=1)
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1)
    feedforward: int = Field(512, ge=1)
    attention_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    position_coding: bool = False
    pooling: Literal["mean", "max"] = "mean"

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TransformerEncoderParams:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        return self


@register_model("transformer_encoder", params=TransformerEncoderParams, kind="frame")
class TransformerEncoderModel(FrameClassifier):
    params: TransformerEncoderParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: TransformerEncoderParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        self.input_proj = nn.Linear(sum(self.modalities.values()), params.d_model)
        layer = nn.TransformerEncoderLayer(
            params.d_model, params.heads, params.feedforward, params.attention_dropout,
            batch_first=True,
        )
        # Nested tensors would drop padded positions in eval only; off, train and eval run
        # the same computation.
        self.encoder = nn.TransformerEncoder(layer, params.layers, enable_nested_tensor=False)
        self.head, width = fc_head(params.d_model, params.head_sizes, params.dropout)
        self._set_output(width)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        x = self.input_proj(torch.cat(features, dim=-1))
        if self.params.position_coding:
            x = x + sinusoid_codes(x.shape[1], x.shape[2], x.device)
        encoded = self.encoder(x, src_key_padding_mask=~mask)
        pool = masked_mean if self.params.pooling == "mean" else masked_max
        return self.head(pool(encoded, mask))
