"""Time-distributed frame-level models (paper, section 3, "Time-distributed models"): the
same layers applied to every frame, then a pooling over time.

``td_dense_maxpool``: fully connected blocks on every frame (the paper: one), max-pooled
over the real frames, the output layer.

``td_dense_sorting``: the ResNet-like network applied to every frame gives per-frame class
scores; for each class the ``top_k`` highest scores over the real frames, sorted, go
through two dense layers shared by all classes (plus a bias per class). The authors' code
sorted all 300 (zero-padded) positions; the top k over real frames does not depend on
padding and is far cheaper.

``td_conv``: per modality, 1-D convolutions over time with the features as channels, each
followed by BatchNorm, LeakyReLU and max-pooling over time; a final max over the real
frames; the modalities concatenated; fully connected blocks; the output layer. (The
authors' convolution model had its channel and time axes mixed up; here channels are the
feature dimensions and the kernel slides over frames.)

Every per-frame layer runs on the real frames only (see ``apply_to_frames``), so BatchNorm
statistics never include padding.
"""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from torch import nn

from yt8mkit.models.base import copy_into
from yt8mkit.models.frame_common import (
    FrameClassifier,
    FrameHeadParams,
    FrameInputParams,
    apply_to_frames,
    fc_head,
    masked_max,
    masked_pool_time,
    masked_top_k,
)
from yt8mkit.models.registry import register_model
from yt8mkit.models.resnet_like import ResNetLike, ResNetLikeParams


class TdDenseMaxPoolParams(FrameHeadParams):
    """One per-frame FC block of 2048 and no block after the pooling, as in the paper."""

    frame_sizes: list[PositiveInt] = Field(default_factory=lambda: [2048], min_length=1)
    head_sizes: list[PositiveInt] = Field(default_factory=list)


@register_model("td_dense_maxpool", params=TdDenseMaxPoolParams, kind="frame")
class TdDenseMaxPool(FrameClassifier):
    params: TdDenseMaxPoolParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: TdDenseMaxPoolParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        self.frame_net, self.frame_dim = fc_head(
            sum(self.modalities.values()), params.frame_sizes, params.dropout
        )
        self.head, width = fc_head(self.frame_dim, params.head_sizes, params.dropout)
        self._set_output(width)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        per_frame = apply_to_frames(self.frame_net, torch.cat(features, dim=-1), mask,
                                    self.frame_dim)
        return self.head(masked_max(per_frame, mask))


class TdDenseSortingParams(FrameInputParams):
    """The per-frame network is the ResNet-like one at an eighth of its video-level width:
    it runs on every frame (300 times the work of a video-level model) and its output layer
    scores every class on every frame."""

    inner_size: int = Field(256, ge=1)
    av_id_block_num: int = Field(1, ge=0)
    concat_id_block_num: int = Field(1, ge=0)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    # Per class, the k most confident frames (sorted) are what the dense layers see.
    top_k: int = Field(20, ge=1)
    sort_hidden: int = Field(128, ge=1)


@register_model("td_dense_sorting", params=TdDenseSortingParams, kind="frame")
class TdDenseSorting(FrameClassifier):
    """Penultimate features are the sorted top-k per-frame scores, (B, num_classes * k)
    in class-major order; ``classify`` is the two shared dense layers."""

    params: TdDenseSortingParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: TdDenseSortingParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        self.frame_net = ResNetLike(
            num_classes, self.modalities,
            ResNetLikeParams(
                input_norm="none", inner_size=params.inner_size,
                av_id_block_num=params.av_id_block_num,
                concat_id_block_num=params.concat_id_block_num, dropout=params.dropout,
            ),
        )
        self.sort_dense = nn.Sequential(nn.Linear(params.top_k, params.sort_hidden),
                                        nn.LeakyReLU())
        self.output = nn.Linear(params.sort_hidden, 1)
        # The shared layers cannot tell classes apart; a bias per class carries the prior.
        self.class_bias = nn.Parameter(torch.zeros(num_classes))
        self.penultimate_dim = num_classes * params.top_k

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        real = {name: x[mask] for name, x in zip(self.modalities, features)}
        scores = self.frame_net(real)  # (real frames, classes)
        per_frame = scores.new_zeros(*mask.shape, self.num_classes).index_put((mask,), scores)
        top = masked_top_k(per_frame, mask, self.params.top_k)  # (B, k, classes)
        return top.transpose(1, 2).flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        sorted_scores = features.reshape(-1, self.num_classes, self.params.top_k)
        return self.output(self.sort_dense(sorted_scores)).squeeze(-1) + self.class_bias

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        with torch.no_grad():
            self.output.bias.zero_()
        copy_into(self.class_bias, prior_logits)


class TdConvParams(FrameHeadParams):
    """The paper gives no sizes; the authors' best used two layers of kernel 3 and pooling
    3. Conv layer i of a modality of width D has round(channel_multipliers[i] * D)
    channels, so one setting fits both video (1024) and audio (128). The authors used 2x
    the width; half keeps a CPU step affordable."""

    channel_multipliers: list[PositiveFloat] = Field(default_factory=lambda: [0.5, 0.5],
                                                     min_length=1)
    kernel_size: int = Field(3, ge=1)
    pool_size: int = Field(3, ge=1)
    conv_dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel_size must be odd so frames keep their positions, got {value}")
        return value


class ConvBlock(nn.Module):
    """Conv1d over time ('same' padding) -> BatchNorm -> LeakyReLU -> Dropout -> max-pool,
    all masked. Padding frames are zero going in and coming out, so at a video's end the
    convolution sees zeros whether the video is alone or padded in a batch."""

    def __init__(self, in_channels: int, out_channels: int, params: TdConvParams) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pool_size = params.pool_size
        self.conv = nn.Conv1d(in_channels, out_channels, params.kernel_size,
                              padding=params.kernel_size // 2)
        self.post = nn.Sequential(nn.BatchNorm1d(out_channels), nn.LeakyReLU(),
                                  nn.Dropout(params.conv_dropout))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, T, C) -> (B, C, T): Conv1d's channels are the features, its length the frames.
        convolved = self.conv(x.transpose(1, 2)).transpose(1, 2)
        activated = apply_to_frames(self.post, convolved, mask, self.out_channels)
        if self.pool_size == 1:
            return activated, mask
        return masked_pool_time(activated, mask, self.pool_size)


@register_model("td_conv", params=TdConvParams, kind="frame")
class TdConv(FrameClassifier):
    params: TdConvParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: TdConvParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        self.towers = nn.ModuleDict()
        pooled = 0
        for name, width in self.modalities.items():
            blocks, channels = [], width
            for multiplier in params.channel_multipliers:
                out = max(1, round(multiplier * width))
                blocks.append(ConvBlock(channels, out, params))
                channels = out
            self.towers[name] = nn.ModuleList(blocks)
            pooled += channels
        self.head, head_width = fc_head(pooled, params.head_sizes, params.dropout)
        self._set_output(head_width)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        pooled = []
        for name, x in zip(self.modalities, features):
            tower_mask = mask
            for block in cast(nn.ModuleList, self.towers[name]):
                x, tower_mask = block(x, tower_mask)
            pooled.append(masked_max(x, tower_mask))
        return self.head(torch.cat(pooled, dim=1))
