"""Training losses on logits: BCE, the paper's soft ranking loss, and hinge ranking.

Every loss takes (logits (B, C), targets (B, C) in [0, 1]) and returns a scalar. Targets
may be soft (mixup, distillation's soft labels).

Ranking losses: the paper's reading. "First we extract top 30 scores corresponding to
negative labels for every sample in the batch. Then we extract all scores corresponding to
positive labels in the batch ... averaging it across all pairs of scores in the batch."
So the negatives are the union over videos of each video's 30 highest-scored negatives,
the positives are every positive score of the batch, and the loss is the mean of
softplus(n - p + margin) over the full cross product: a positive of one video is also
ranked against the hard negatives of the others. That matches GAP, which ranks all
(video, class) pairs of the whole set together, not each video alone. ``pairs="video"``
instead pairs each video's positives only with its own negatives (the authors' example-wise
variant), averaged over all such pairs in the batch.

Soft targets: a label is positive when its target is >= ``positive_threshold`` (0.5) and
negative otherwise; pairs are unweighted. With hard targets this is exactly the paper's
loss; with mixup it ranks the dominant video's labels above the rest. (The authors' code
tested target > 0, which makes a label mixed in at weight 0.01 a full positive.)

Known flaws of the authors' implementation that are not carried over: the top negatives
were taken over the flattened batch (30 * B overall, not 30 per video); pairs whose score
difference was exactly 0 were dropped (a constant-output network then got a NaN loss);
the example-wise variant padded missing positives and counted the padding in the mean.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import ValidationError
from torch import nn
from torch.nn import functional

from yt8mkit.train.config import LOSS_PARAMS as _PARAMS
from yt8mkit.train.config import LossConfig, LossName, RankingParams


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over videos and classes; soft targets allowed."""
    return functional.binary_cross_entropy_with_logits(logits.float(), targets.float())


def ranking_pairs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    top_negatives: int = 30,
    positive_threshold: float = 0.5,
    pairs: Literal["batch", "video"] = "batch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n - p, weight) over the ranking pairs, broadcast shapes; weight is 1 for a real
    pair and 0 for padding. The mean of f(n - p + margin) over real pairs is the loss."""
    scores = logits.float()
    positive = targets >= positive_threshold
    k = min(top_negatives, scores.shape[1])
    # Positives go to -inf so that topk reaches them only when a video has < k negatives;
    # those slots are then marked invalid.
    neg_scores, neg_index = scores.masked_fill(positive, float("-inf")).topk(k, dim=1)
    neg_valid = ~positive.gather(1, neg_index)
    neg_scores = scores.gather(1, neg_index)
    if pairs == "batch":
        pos = scores[positive]
        neg = neg_scores[neg_valid]
        return neg[None, :] - pos[:, None], torch.ones((), device=scores.device)
    # Each video's positives, left-aligned and padded to the batch's largest count.
    max_pos = int(positive.sum(dim=1).max().item()) if positive.numel() else 0
    order = torch.argsort(positive.to(torch.int8), dim=1, descending=True, stable=True)
    pos_index = order[:, :max_pos]
    pos_valid = positive.gather(1, pos_index)
    pos_scores = scores.gather(1, pos_index)
    diff = neg_scores[:, None, :] - pos_scores[:, :, None]
    weight = (pos_valid[:, :, None] & neg_valid[:, None, :]).float()
    return diff, weight


class BCELoss(nn.Module):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return bce_with_logits(logits, targets)


class RankingLoss(nn.Module):
    """Pairwise ranking loss f(n - p + margin) over the pairs of :func:`ranking_pairs`,
    optionally plus ``bce_weight`` * BCE. f = softplus (the paper's soft ranking loss,
    log(1 + exp(n - p + 1))) or relu (hinge: max(0, 1 - (p - n)))."""

    def __init__(self, kind: Literal["soft", "hinge"], params: RankingParams) -> None:
        super().__init__()
        self.kind = kind
        self.params = params

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = self.params
        diff, weight = ranking_pairs(logits, targets, p.top_negatives, p.positive_threshold,
                                     p.pairs)
        shifted = diff + p.margin
        per_pair = functional.softplus(shifted) if self.kind == "soft" else functional.relu(shifted)
        weight = weight.expand_as(per_pair)
        count = weight.sum()
        # A batch without positives (or negatives) has no pairs: zero loss, graph kept.
        loss = (per_pair * weight).sum() / count.clamp(min=1.0)
        if p.bce_weight:
            loss = loss + p.bce_weight * bce_with_logits(logits, targets)
        return loss


def make_loss(name: LossName, **params: Any) -> nn.Module:
    """The loss ``name`` as a module called with (logits, targets) -> scalar."""
    if name not in _PARAMS:
        raise ValueError(f"unknown loss {name!r}; known losses: {sorted(_PARAMS)}")
    params_class = _PARAMS[name]
    unknown = sorted(set(params) - set(params_class.model_fields))
    if unknown:
        raise ValueError(
            f"loss {name!r}: unknown parameter(s) {unknown}; "
            f"valid parameters: {sorted(params_class.model_fields)}"
        )
    try:
        validated = params_class.model_validate(params)
    except ValidationError as error:
        raise ValueError(f"loss {name!r}: invalid parameters: {error}") from error
    if name == "bce":
        return BCELoss()
    assert isinstance(validated, RankingParams)
    return RankingLoss("soft" if name == "soft_ranking" else "hinge", validated)


def build_loss(config: LossConfig) -> nn.Module:
    """The loss a config names."""
    return make_loss(config.name, **config.params)
