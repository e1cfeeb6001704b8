"""Recurrent frame-level models (paper, section 3, "Recurrent frame-level models").

``early_concat_lstm``: audio and video concatenated per frame, an LSTM (2 layers of 1024,
uni- or bidirectional), a fully connected layer of 2048, the output layer.

``lstm_bi_attention``: per modality a bidirectional LSTM, attention pooling over its
outputs, the modalities concatenated, fully connected blocks, the output layer.

Both run the LSTM on packed sequences, so padding frames never enter the recurrence.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from yt8mkit.models.frame_common import (
    FrameClassifier,
    FrameHeadParams,
    fc_head,
    frame_lengths,
    masked_max,
    masked_mean,
    masked_softmax,
)
from yt8mkit.models.registry import register_model

Pooling = Literal["last", "mean", "max"]


def run_lstm(
    lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """An LSTM over the real frames: outputs (B, T, dirs * hidden), zero on padding, and the
    final hidden state of every layer and direction, (B, layers * dirs * hidden). The
    backward direction starts at each video's own last frame, not at the padding."""
    lengths = frame_lengths(mask).clamp(min=1).cpu()
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    outputs, (h_n, _) = lstm(packed)
    outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
    # h_n is (layers * dirs, B, hidden), already back in the batch's order.
    return outputs, h_n.transpose(0, 1).reshape(x.shape[0], -1)


class EarlyConcatLstmParams(FrameHeadParams):
    """Defaults are the paper's: 2 LSTM layers of 1024, then an FC layer of 2048."""

    hidden: int = Field(1024, ge=1)
    layers: int = Field(2, ge=1)
    bidirectional: bool = False
    # "last": the final hidden state of every layer (and direction) concatenated, as the
    # authors did; "mean"/"max": the top layer's outputs pooled over the real frames.
    pooling: Pooling = "last"
    # Dropout between stacked LSTM layers.
    lstm_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    head_sizes: list[PositiveInt] = Field(default_factory=lambda: [2048])
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


@register_model("early_concat_lstm", params=EarlyConcatLstmParams, kind="frame")
class EarlyConcatLstm(FrameClassifier):
    params: EarlyConcatLstmParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: EarlyConcatLstmParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        directions = 2 if params.bidirectional else 1
        self.lstm = nn.LSTM(
            sum(self.modalities.values()), params.hidden, num_layers=params.layers,
            batch_first=True, bidirectional=params.bidirectional,
            dropout=params.lstm_dropout if params.layers > 1 else 0.0,
        )
        pooled = params.hidden * directions
        if params.pooling == "last":
            pooled *= params.layers
        self.head, width = fc_head(pooled, params.head_sizes, params.dropout)
        self._set_output(width)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        outputs, last = run_lstm(self.lstm, torch.cat(features, dim=-1), mask)
        pooling = self.params.pooling
        if pooling == "last":
            pooled = last
        elif pooling == "mean":
            pooled = masked_mean(outputs, mask)
        else:
            pooled = masked_max(outputs, mask)
        return self.head(pooled)


class AttentionPool(nn.Module):
    """Attention pooling over time: ``heads`` softmax distributions over the real frames,
    scored by a small MLP (additive attention), each giving a weighted mean of the frames;
    the heads' means concatenated, (B, T, D) -> (B, heads * D)."""

    def __init__(self, dim: int, attention_size: int, heads: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, attention_size), nn.Tanh(), nn.Linear(attention_size, heads)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = masked_softmax(self.score(x), mask)  # (B, T, heads)
        return torch.einsum("bth,btd->bhd", weights, x).flatten(1)


class LstmBiAttentionParams(FrameHeadParams):
    """The paper gives no sizes for this model; the defaults are small (a 256-unit LSTM per
    direction and modality) because a recurrence over 300 frames is slow on a CPU."""

    hidden: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)
    attention_size: int = Field(256, ge=1)
    attention_heads: int = Field(1, ge=1)
    lstm_dropout: float = Field(0.0, ge=0.0, lt=1.0)


@register_model("lstm_bi_attention", params=LstmBiAttentionParams, kind="frame")
class LstmBiAttention(FrameClassifier):
    params: LstmBiAttentionParams

    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: LstmBiAttentionParams
    ) -> None:
        super().__init__(num_classes, feature_dims, params)
        out = 2 * params.hidden
        # Separate towers per modality: audio and video need not align in what they attend to.
        self.lstms = nn.ModuleDict({
            name: nn.LSTM(
                width, params.hidden, num_layers=params.layers, batch_first=True,
                bidirectional=True, dropout=params.lstm_dropout if params.layers > 1 else 0.0,
            )
            for name, width in self.modalities.items()
        })
        self.pools = nn.ModuleDict({
            name: AttentionPool(out, params.attention_size, params.attention_heads)
            for name in self.modalities
        })
        pooled = len(self.modalities) * params.attention_heads * out
        self.head, width = fc_head(pooled, params.head_sizes, params.dropout)
        self._set_output(width)

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        features, mask = self.frames(inputs)
        pooled = []
        for name, x in zip(self.modalities, features):
            outputs, _ = run_lstm(cast(nn.LSTM, self.lstms[name]), x, mask)
            pooled.append(self.pools[name](outputs, mask))
        return self.head(torch.cat(pooled, dim=1))
