"""Mixup: the Beta distribution of λ, exact mixing of every modality and of the labels
with one λ and one partner, α <= 0 as identity, and determinism under a generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yt8mkit.train.mixup import mixup, sample_lambda

BATCH = 64


@pytest.mark.parametrize("alpha", [0.2, 0.4, 1.0, 3.0])
def test_lambda_is_beta_alpha_alpha(alpha: float) -> None:
    draws = sample_lambda(alpha, 200_000, torch.Generator().manual_seed(0)).double()
    assert draws.min() >= 0 and draws.max() <= 1
    assert float(draws.mean()) == pytest.approx(0.5, abs=0.005)
    assert float(draws.var()) == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.02)


def _batch() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    inputs = {"rgb": torch.randn(BATCH, 12, generator=g),
              "audio": torch.randn(BATCH, 3, generator=g)}
    # One class per video: a mixed row then reveals both its λ and its partner.
    return inputs, torch.eye(BATCH)


def _recover(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(λ, partner) per row from mixed one-hot targets."""
    lam = targets.diagonal().clone()
    off = targets - torch.diag(targets.diagonal())
    partner = torch.where(off.max(dim=1).values > 0, off.argmax(dim=1), torch.arange(BATCH))
    return lam, partner


@pytest.mark.parametrize("per_sample", [False, True])
def test_every_modality_mixed_with_the_labels_lambda_and_partner(per_sample: bool) -> None:
    inputs, targets = _batch()
    mixed, mixed_targets = mixup(inputs, targets, 0.4, torch.Generator().manual_seed(2),
                                 per_sample=per_sample)
    lam, partner = _recover(mixed_targets)
    moved = partner != torch.arange(BATCH)
    assert moved.sum() > BATCH // 2
    # A permutation: distinct partners (a row whose λ rounded to 1 shows no partner).
    assert partner[moved].unique().numel() == int(moved.sum())
    # Label mixing is exact: λ and 1 - λ, nothing else.
    rows = torch.arange(BATCH)
    expected = torch.zeros(BATCH, BATCH)
    expected[rows, rows] += lam
    expected[rows, partner] += 1 - lam
    torch.testing.assert_close(mixed_targets, expected, rtol=0, atol=1e-7)
    for name, x in inputs.items():
        column = lam[:, None]
        torch.testing.assert_close(mixed[name], column * x + (1 - column) * x[partner])
    distinct = lam[moved].unique().numel()
    assert distinct == 1 if not per_sample else distinct > BATCH // 2


def test_mixup_of_targets_matches_formula_with_soft_labels() -> None:
    inputs, _ = _batch()
    labels = torch.rand(BATCH, 5, generator=torch.Generator().manual_seed(3))
    mixed, mixed_labels = mixup({**inputs, "ids": torch.eye(BATCH)}, labels, 0.4,
                                torch.Generator().manual_seed(4))
    lam, partner = _recover(mixed["ids"])
    column = lam[:, None]
    torch.testing.assert_close(mixed_labels, column * labels + (1 - column) * labels[partner])


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_non_positive_alpha_is_identity(alpha: float) -> None:
    inputs, targets = _batch()
    generator = torch.Generator().manual_seed(5)
    state = generator.get_state()
    mixed, mixed_targets = mixup(inputs, targets, alpha, generator)
    assert mixed is inputs and mixed_targets is targets
    assert torch.equal(generator.get_state(), state)  # nothing drawn


def test_deterministic_under_a_generator_seed() -> None:
    inputs, targets = _batch()
    first = mixup(inputs, targets, 0.4, torch.Generator().manual_seed(6), per_sample=True)
    second = mixup(inputs, targets, 0.4, torch.Generator().manual_seed(6), per_sample=True)
    other = mixup(inputs, targets, 0.4, torch.Generator().manual_seed(7), per_sample=True)
    assert torch.equal(first[1], second[1])
    assert all(torch.equal(first[0][k], second[0][k]) for k in inputs)
    assert not torch.equal(first[1], other[1])


def test_masks_are_united_and_bad_inputs_rejected() -> None:
    mask = torch.zeros(BATCH, 10, dtype=torch.bool)
    mask[:, :3] = True
    mask[0, :] = True
    mixed, _ = mixup({"mask": mask, "ids": torch.eye(BATCH)}, torch.zeros(BATCH, 2), 0.4,
                     torch.Generator().manual_seed(8))
    _, partner = _recover(mixed["ids"])
    assert torch.equal(mixed["mask"], mask | mask[partner])
    with pytest.raises(TypeError, match="int64"):
        mixup({"n": torch.ones(BATCH, dtype=torch.int64)}, torch.zeros(BATCH, 2), 0.4)
    with pytest.raises(ValueError, match="'rgb' has 3 rows"):
        mixup({"rgb": torch.ones(3, 2)}, torch.zeros(BATCH, 2), 0.4)


def test_sample_lambda_is_seeded() -> None:
    a = sample_lambda(0.4, 10, torch.Generator().manual_seed(9))
    b = sample_lambda(0.4, 10, torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert np.unique(a.numpy()).size == 10
