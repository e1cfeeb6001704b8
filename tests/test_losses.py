"""Losses: BCE with soft targets, and the ranking losses checked against explicit loops
over the (positive, negative) pairs the paper describes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

from yt8mkit.train.config import LossConfig
from yt8mkit.train.losses import build_loss, make_loss, ranking_pairs


def _softplus(z: float) -> float:
    return math.log1p(math.exp(z))


def _hinge(z: float) -> float:
    return max(0.0, z)


def _reference(logits: torch.Tensor, targets: torch.Tensor, per_pair, pairs: str,
               top: int = 30, margin: float = 1.0, threshold: float = 0.5) -> float:
    """Explicit loops: per video its ``top`` highest negatives; all positives; pairs across
    the batch ("batch") or within each video ("video"); mean over pairs."""
    scores, labels = logits.tolist(), (targets >= threshold).tolist()
    positives = [[s for s, y in zip(row, ys) if y] for row, ys in zip(scores, labels)]
    negatives = [sorted((s for s, y in zip(row, ys) if not y), reverse=True)[:top]
                 for row, ys in zip(scores, labels)]
    values = []
    for i, video_positives in enumerate(positives):
        for p in video_positives:
            for j, video_negatives in enumerate(negatives):
                if pairs == "video" and j != i:
                    continue
                values.extend(per_pair(n - p + margin) for n in video_negatives)
    return sum(values) / len(values) if values else 0.0


def _random_batch(batch: int, classes: int, seed: int, positives: float = 0.1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=g, dtype=torch.float64) * 2
    targets = (torch.rand(batch, classes, generator=g) < positives).double()
    targets[0, :3] = 1.0  # at least one video with several positives
    return logits, targets


LOSSES = [("soft_ranking", _softplus), ("hinge_ranking", _hinge)]


@pytest.mark.parametrize(("name", "per_pair"), LOSSES)
@pytest.mark.parametrize("pairs", ["batch", "video"])
@pytest.mark.parametrize(("classes", "top"), [(60, 30), (20, 30), (40, 5)])
def test_ranking_loss_matches_explicit_pairs(name, per_pair, pairs, classes, top) -> None:
    logits, targets = _random_batch(6, classes, seed=classes + top)
    loss = make_loss(name, pairs=pairs, top_negatives=top)(logits, targets)
    expected = _reference(logits, targets, per_pair, pairs, top=top)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_batch_pairs_cross_videos_and_take_top_per_video() -> None:
    # Video 0's negatives all outscore video 1's: a flattened top-k would keep only
    # video 0's; per-video top-k keeps video 1's best negative too.
    logits = torch.tensor([[5.0, 4.0, 3.0, 0.0], [-3.0, -2.0, -1.0, 1.0]])
    targets = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    diff, _ = ranking_pairs(logits, targets, top_negatives=1)
    assert sorted(diff.flatten().tolist()) == sorted([5.0 - 0, -1.0 - 0, 5.0 - 1, -1.0 - 1])


def test_soft_targets_are_thresholded_at_half() -> None:
    logits, hard = _random_batch(5, 40, seed=1)
    g = torch.Generator().manual_seed(2)
    soft = torch.where(hard > 0, 0.5 + 0.5 * torch.rand(hard.shape, generator=g, dtype=hard.dtype),
                       0.49 * torch.rand(hard.shape, generator=g, dtype=hard.dtype))
    soft[0, 0] = soft[0, 1] = 0.5  # the boundary counts as positive (hard[0, :3] are 1)
    loss = make_loss("soft_ranking")
    assert float(loss(logits, soft)) == pytest.approx(float(loss(logits, hard)), rel=1e-12)


@pytest.mark.parametrize("pairs", ["batch", "video"])
def test_gradients_flow_with_the_right_signs(pairs: str) -> None:
    logits, targets = _random_batch(4, 50, seed=3)
    logits.requires_grad_(True)
    make_loss("soft_ranking", pairs=pairs, top_negatives=5)(logits, targets).backward()
    grad = logits.grad
    assert torch.isfinite(grad).all()
    positive = targets > 0
    assert (grad[positive] < 0).all()  # raising a positive's score lowers the loss
    assert (grad[~positive] >= 0).all()
    # Only each video's 5 highest negatives take part.
    assert int((grad[~positive] > 0).sum()) == 4 * 5


def test_constant_scores_and_empty_batches_stay_finite() -> None:
    targets = torch.zeros(3, 10)
    targets[1, 2] = 1.0
    logits = torch.zeros(3, 10, requires_grad=True)
    for name in ("soft_ranking", "hinge_ranking"):
        # Ties are pairs too: softplus(1) and hinge 1, never NaN.
        value = make_loss(name)(logits, targets).detach()
        assert float(value) == pytest.approx(_softplus(1.0) if name == "soft_ranking" else 1.0)
    no_positives = make_loss("soft_ranking")(logits, torch.zeros(3, 10))
    no_positives.backward()
    assert float(no_positives.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros(3, 10))


def test_bce_with_soft_targets() -> None:
    logits, _ = _random_batch(4, 9, seed=4)
    targets = torch.rand(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    probs = torch.sigmoid(logits)
    expected = -(targets * probs.log() + (1 - targets) * (1 - probs).log()).mean()
    assert float(make_loss("bce")(logits, targets)) == pytest.approx(float(expected), rel=1e-5)


def test_bce_weight_adds_bce() -> None:
    logits, targets = _random_batch(4, 40, seed=6)
    rank = make_loss("soft_ranking")(logits, targets)
    both = make_loss("soft_ranking", bce_weight=10.0)(logits, targets)
    bce = functional.binary_cross_entropy_with_logits(logits.float(), targets.float())
    assert float(both) == pytest.approx(float(rank) + 10.0 * float(bce), rel=1e-5)


def test_loss_config_and_errors() -> None:
    assert float(build_loss(LossConfig())(torch.zeros(2, 3), torch.ones(2, 3))) == pytest.approx(
        math.log(2.0))
    with pytest.raises(ValueError, match=r"unknown loss 'focal'.*bce"):
        make_loss("focal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['top_k'\].*top_negatives"):
        make_loss("soft_ranking", top_k=10)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['margin'\]"):
        make_loss("bce", margin=1.0)
    with pytest.raises(ValueError, match="invalid parameters"):
        make_loss("hinge_ranking", pairs="sample")
