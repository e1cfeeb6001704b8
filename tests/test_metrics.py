"""Metrics against slow references written here from the starter's definitions.

Scores are rounded to one decimal in most cases so that ties are everywhere: the
fast paths must apply the documented tie rule exactly (within a video the lower
class first; in a pooled ranking negatives before positives).
"""

from __future__ import annotations

import numpy as np
import pytest

from yt8mkit.metrics import (
    GapAccumulator,
    Labels,
    average_precision,
    evaluate,
    evaluate_dense,
    gap_at_k,
    gap_from_top_k,
    order_sparse,
    top_k,
)
from yt8mkit.metrics.topk import select_block

# ---------------------------------------------------------------- references


def ref_top(row: np.ndarray, k: int) -> np.ndarray:
    """Class indices of the top k of one row: score descending, lower class first."""
    return np.argsort(-row, kind="stable")[: min(k, len(row))]


def ref_ap(pairs: list[tuple[float, bool]], num_positives: int) -> float:
    if num_positives == 0 or not pairs:
        return 0.0
    ranked = sorted(pairs, key=lambda p: (-p[0], p[1]))  # negatives first on ties
    found, total = 0, 0.0
    for i, (_, positive) in enumerate(ranked, start=1):
        if positive:
            found += 1
            total += found / i
    return total / num_positives


def ref_gap(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    pairs = []
    for row, lab in zip(scores, labels):
        pairs += [(float(row[c]), bool(lab[c] > 0)) for c in ref_top(row, k)]
    return ref_ap(pairs, int((labels > 0).sum()))


def ref_hit_at_1(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([labels[i, np.argmax(row)] > 0 for i, row in enumerate(scores)]))


def ref_perr(scores: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for row, lab in zip(scores, labels):
        n_lab = int((lab > 0).sum())
        if n_lab == 0:
            continue  # the starter divides 0 by the class count
        top = ref_top(row, n_lab)
        total += sum(1 for c in top if row[c] > 0 and lab[c] > 0) / n_lab
    return total / len(scores)


def ref_map(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    num_classes = scores.shape[1]
    per_class: list[list[tuple[float, bool]]] = [[] for _ in range(num_classes)]
    for row, lab in zip(scores, labels):
        for c in ref_top(row, k):
            per_class[c].append((float(row[c]), bool(lab[c] > 0)))
    aps = [ref_ap(per_class[c], int((labels[:, c] > 0).sum())) for c in range(num_classes)]
    return float(np.mean(aps))


# ---------------------------------------------------------------- data


def random_case(
    rng: np.random.Generator, n: int, c: int, decimals: int | None = 1, max_labels: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    scores = rng.random((n, c)).astype(np.float32)
    if decimals is not None:
        scores = np.round(scores, decimals).astype(np.float32)
    labels = np.zeros((n, c), np.uint8)
    for i in range(n):
        m = int(rng.integers(0, min(max_labels, c) + 1))
        labels[i, rng.choice(c, m, replace=False)] = 1
        # Give positives a head start so that they are often retrieved.
        scores[i] += labels[i] * np.float32(rng.random() < 0.5) * np.float32(0.3)
    return scores, labels


CASES = [(40, 25, 5), (60, 50, 20), (30, 7, 20), (50, 120, 20), (1, 3, 1), (80, 30, 3)]


# ---------------------------------------------------------------- top_k


BACKENDS = ["native", "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_top_k_matches_stable_argsort(dtype: type, backend: str) -> None:
    if backend == "native" and dtype == np.float64:
        with pytest.raises(ValueError, match="float32 or float16"):
            top_k(np.zeros((2, 3)), 1, backend)
        return
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, c = int(rng.integers(1, 40)), int(rng.integers(1, 700))
        k = int(rng.integers(1, 45))
        scores = rng.normal(size=(n, c)).astype(dtype)
        if trial % 2:
            scores = np.round(scores, 1)
        if trial % 5 == 0:
            scores[: n // 2] = 0
        if trial % 7 == 0:
            scores[:, ::3] = -np.inf
        idx, val = top_k(scores, k, backend)
        want = np.stack([ref_top(row, k) for row in scores])
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_array_equal(val, np.take_along_axis(scores, want, axis=1))
        assert idx.dtype == np.int32 and val.dtype == scores.dtype


def test_top_k_large_block_and_integer_scores() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=(1100, 300))  # > one block, massive ties
    idx, val = top_k(scores, 20)
    want = np.stack([ref_top(row, 20) for row in scores])
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(val, np.take_along_axis(scores, want, axis=1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_top_k_rejects_nan_and_bad_k(backend: str) -> None:
    scores = np.zeros((3, 10), np.float32)
    scores[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        top_k(scores, 2, backend)
    # A NaN in the columns left out of the lower bound's groups (3862 = 128 * 30 + 22).
    wide = np.zeros((2, 3862), np.float32)
    wide[1, -1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        top_k(wide, 20, backend)
    with pytest.raises(ValueError, match="positive integer"):
        top_k(np.zeros((2, 3)), 0)


def test_selection_contains_decides_ties() -> None:
    block = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], np.float32)
    sel = select_block(block, 3)  # 0.9, then 0.5 at classes 0 and 2; class 3 is out
    rows = np.zeros(5, np.int64)
    cols = np.arange(5)
    np.testing.assert_array_equal(
        sel.contains(rows, cols, block[0]), [True, True, True, False, False]
    )


def test_order_sparse_sorts_and_pads() -> None:
    idx = np.array([[3, 1, -1, 2], [-1, -1, -1, -1]])
    sc = np.array([[0.2, 0.5, 9.0, 0.5], [1, 1, 1, 1]], np.float32)
    oi, os_ = order_sparse(idx, sc, 3)
    np.testing.assert_array_equal(oi, [[1, 2, 3], [-1, -1, -1]])
    np.testing.assert_array_equal(os_, np.array([[0.5, 0.5, 0.2], [0, 0, 0]], np.float32))


# ---------------------------------------------------------------- GAP


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("n", "c", "k"), CASES)
def test_gap_dense_and_sparse_match_reference_with_ties(
    n: int, c: int, k: int, backend: str
) -> None:
    rng = np.random.default_rng(n * 1000 + c + k)
    for decimals in (1, 0, None):
        scores, labels = random_case(rng, n, c, decimals)
        want = ref_gap(scores, labels, k)
        assert gap_at_k(scores, labels, k, backend) == pytest.approx(want, abs=1e-12)
        got = gap_at_k(scores, Labels.from_dense(labels), k, backend)
        assert got == pytest.approx(want, abs=1e-12)
        idx, val = top_k(scores, k + 7, backend)
        assert gap_from_top_k(idx, val, labels, k) == pytest.approx(want, abs=1e-12)
        # Row order within the sparse top-K does not matter.
        perm = rng.permuted(np.tile(np.arange(idx.shape[1]), (n, 1)), axis=1)
        shuffled = np.take_along_axis(idx, perm, 1), np.take_along_axis(val, perm, 1)
        assert gap_from_top_k(*shuffled, labels, k) == pytest.approx(want, abs=1e-12)


def test_gap_official_value_without_ties() -> None:
    # Two videos, top 2 each: pooled ranking 0.9(+) 0.8(-) 0.7(+) 0.6(-); a third label
    # (class 3 of video 0) is never retrieved but counts: (1/1 + 2/3) / 3.
    scores = np.array([[0.9, 0.1, 0.8, 0.05], [0.2, 0.7, 0.0, 0.6]], np.float32)
    labels = np.array([[1, 0, 0, 1], [0, 1, 0, 0]])
    assert gap_at_k(scores, labels, 2) == pytest.approx((1 + 2 / 3) / 3)


def test_gap_ties_are_pessimistic() -> None:
    # All four pairs tie: negatives first, so the positive sits at rank 4.
    scores = np.array([[0.5, 0.5], [0.5, 0.5]], np.float32)
    labels = np.array([[0, 1], [0, 0]])
    assert gap_at_k(scores, labels, 2) == pytest.approx(1 / 4)
    assert average_precision(np.array([0.5, 0.5, 0.5]), np.array([0.5]), 1) == 1 / 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_gap_edge_cases(backend: str) -> None:
    rng = np.random.default_rng(5)
    scores, labels = random_case(rng, 30, 12)
    labels[::3] = 0  # videos without labels

    def gap(s: np.ndarray, lab: np.ndarray, k: int) -> float:
        return gap_at_k(s, lab, k, backend)

    assert gap(scores, labels, 20) == pytest.approx(ref_gap(scores, labels, 20))  # k > C
    zeros = np.zeros_like(scores)  # all-zero scores are still retrieved (no filtering)
    assert gap(zeros, labels, 4) == pytest.approx(ref_gap(zeros, labels, 4))
    assert gap(zeros, labels, 4) > 0
    assert gap(scores, np.zeros_like(labels), 5) == 0.0  # no positives at all
    assert gap(np.zeros((0, 12), np.float32), np.zeros((0, 12)), 5) == 0.0
    assert gap(scores, labels, 12) == pytest.approx(ref_gap(scores, labels, 12))
    with pytest.raises(ValueError, match="NaN"):
        gap(np.full((2, 12), np.nan, np.float32), labels[:2], 20)
    with pytest.raises(ValueError, match="label rows"):
        gap(scores, labels[:5], 20)


def test_gap_accumulator_chunks_and_modes_agree() -> None:
    rng = np.random.default_rng(9)
    scores, labels = random_case(rng, 700, 40)
    want = ref_gap(scores, labels, 20)
    acc = GapAccumulator(20)
    for start in range(0, 700, 97):
        part = slice(start, start + 97)
        if start % 2:
            acc.add_dense(scores[part], labels[part])
        else:
            idx, val = top_k(scores[part], 25)
            acc.add_top_k(idx, val, Labels.from_dense(labels[part]))
    assert acc.num_videos == 700 and acc.num_positives == int(labels.sum())
    assert acc.gap() == pytest.approx(want, abs=1e-12)
    assert acc.gap() == pytest.approx(want, abs=1e-12)  # gap() can be read twice


def test_gap_sparse_with_missing_predictions() -> None:
    rng = np.random.default_rng(3)
    scores, labels = random_case(rng, 50, 30)
    idx, val = top_k(scores, 20)
    idx[5:10] = -1  # videos without predictions: their labels still count
    val[5:10] = 0
    pairs = []
    for i in [*range(5), *range(10, 50)]:
        pairs += [(float(scores[i, c]), bool(labels[i, c])) for c in ref_top(scores[i], 20)]
    want = ref_ap(pairs, int(labels.sum()))
    assert gap_from_top_k(idx, val, labels, 20) == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------- Hit@1, PERR, MAP


@pytest.mark.parametrize(("n", "c", "k"), CASES)
def test_evaluate_matches_references(n: int, c: int, k: int) -> None:
    rng = np.random.default_rng(7 * n + c)
    for decimals in (1, None):
        scores, labels = random_case(rng, n, c, decimals, max_labels=6)
        scores[0] = 0  # an all-zero row: PERR counts no score-0 hits
        got = evaluate_dense(scores, labels, k)
        assert got.num_videos == n and got.k == k
        assert got.gap == pytest.approx(ref_gap(scores, labels, k), abs=1e-12)
        assert got.hit_at_1 == pytest.approx(ref_hit_at_1(scores, labels), abs=1e-12)
        assert got.perr == pytest.approx(ref_perr(scores, labels), abs=1e-12)
        assert got.map == pytest.approx(ref_map(scores, labels, k), abs=1e-12)
        # From sparse top-K with K >= every label count, all four are exact too.
        idx, val = top_k(scores, max(k, 6))
        assert evaluate(idx, val, Labels.from_dense(labels), k) == got


def test_perr_with_more_labels_than_k_is_exact_from_dense() -> None:
    rng = np.random.default_rng(11)
    scores, labels = random_case(rng, 30, 40, 1, max_labels=30)
    got = evaluate_dense(scores, labels, k=5)
    assert got.perr == pytest.approx(ref_perr(scores, labels), abs=1e-12)
    assert got.map == pytest.approx(ref_map(scores, labels, 5), abs=1e-12)


def test_evaluate_edge_cases() -> None:
    labels = Labels.from_lists([[], [2], [0, 1]], num_classes=4)
    idx = np.array([[1, 2], [-1, -1], [1, 3]])
    val = np.array([[0.9, 0.8], [0, 0], [0.0, 0.5]], np.float32)
    got = evaluate(idx, val, labels, k=2)
    # Video 1 has no predictions, video 2's best is class 3 (0.5) then class 1 (0.0).
    assert got.hit_at_1 == 0.0
    assert got.perr == pytest.approx((0 + 0 + 0 / 2) / 3)  # score 0 is never a PERR hit
    # Pooled: 0.9(-) 0.8(-) 0.5(-) 0.0(+): 1/4 over 3 positives.
    assert got.gap == pytest.approx(1 / 4 / 3)
    # Class 1: pooled 0.9(-), 0.0(+) -> (1/2)/1; classes 0, 2 have no hits; class 3 none.
    assert got.map == pytest.approx(0.5 / 4)
    with pytest.raises(ValueError, match="no videos"):
        evaluate(np.zeros((0, 2), int), np.zeros((0, 2)), Labels.from_lists([], 4))
    with pytest.raises(ValueError, match="class index"):
        evaluate(np.array([[7]]), np.array([[1.0]]), Labels.from_lists([[1]], 4))


# ---------------------------------------------------------------- Labels


def test_labels_round_trip_and_views() -> None:
    dense = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]])
    labels = Labels.from_dense(dense)
    assert len(labels) == 3 and labels.num_classes == 3
    np.testing.assert_array_equal(labels.dense(), dense)
    np.testing.assert_array_equal(labels.dense(slice(1, 3)), dense[1:])
    np.testing.assert_array_equal(labels.dense(np.array([2, 0])), dense[[2, 0]])
    np.testing.assert_array_equal(labels.counts(), [2, 0, 1])
    np.testing.assert_array_equal(Labels.from_lists([[2, 1], [], [0]], 3).dense(), dense)
    hits = labels.hits(np.array([[2, -1], [0, 1], [0, 2]]))
    np.testing.assert_array_equal(hits, [[True, False], [False, False], [True, False]])


def test_labels_validation() -> None:
    with pytest.raises(ValueError, match="outside"):
        Labels(np.array([0, 1]), np.array([5]), 3)
    with pytest.raises(ValueError, match="ends at"):
        Labels(np.array([0, 2]), np.array([1]), 3)
    with pytest.raises(ValueError, match="twice"):
        Labels.from_lists([[1, 1]], 3).sorted_keys()


@pytest.mark.parametrize("parallel_min", [1 << 19, 16])
def test_average_precision_in_parts_matches_reference(
    monkeypatch: pytest.MonkeyPatch, parallel_min: int
) -> None:
    # Small parts force the threaded path (counts summed over sorted parts, merged in
    # C for float32, searched in numpy for float64): the value must not move.
    from yt8mkit.metrics import gap as gap_module

    monkeypatch.setattr(gap_module, "PARALLEL_AP_MIN", parallel_min)
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        retrieved = np.round(rng.random(500), 1).astype(dtype)  # ties everywhere
        hit = rng.random(500) < 0.3
        pairs = [(float(s), bool(h)) for s, h in zip(retrieved, hit)]
        want = ref_ap(pairs, int(hit.sum()) + 7)
        got = average_precision(retrieved, retrieved[hit], int(hit.sum()) + 7)
        assert got == pytest.approx(want, abs=1e-12)
