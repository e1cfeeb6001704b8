"""Per-label outcome counts (the paper's section 4) on hand-made videos, one per case of
the definition, and against a literal per-video implementation on random data."""

from __future__ import annotations

import numpy as np
import pytest

from yt8mkit.analysis.outcomes import OutcomeAccumulator, analyse, chunk_outcomes
from yt8mkit.data.predictions import Predictions, PredictionsWriter


def _csr(label_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.concatenate([[0], np.cumsum([len(x) for x in label_lists])]).astype(np.int64)
    flat = [c for labels in label_lists for c in labels]
    return indptr, np.asarray(flat, np.int64)


def _counts(top: list[tuple[int, float]], labels: list[int], num_classes: int = 10,
            k: int = 20) -> dict[str, set[int]]:
    idx = np.asarray([[c for c, _ in top]])
    scores = np.asarray([[s for _, s in top]], np.float32)
    indptr, flat = _csr([labels])
    tp, fp, fn, _ = chunk_outcomes(idx, scores, indptr, flat, num_classes, k)
    return {name: set(np.flatnonzero(a).tolist()) for name, a in
            (("tp", tp), ("fp", fp), ("fn", fn))}


def test_positive_above_every_negative_is_tp_and_the_rest_follow():
    # 1 above all negatives: TP. 5 (negative) above positive 2: FP. 2 below negative 5: FN.
    # 6 (negative) below every positive: no outcome.
    got = _counts([(1, 0.9), (5, 0.8), (2, 0.7), (6, 0.1)], labels=[1, 2])
    assert got == {"tp": {1}, "fp": {5}, "fn": {2}}


def test_all_positives_on_top_has_no_errors():
    got = _counts([(3, 0.9), (4, 0.8), (0, 0.2), (9, 0.1)], labels=[3, 4])
    assert got == {"tp": {3, 4}, "fp": set(), "fn": set()}


def test_positive_missing_from_top_k_is_fn_and_makes_every_negative_fp():
    # k=3: 7 is not in the top 3, so every negative there (4, 8) outranks a positive.
    got = _counts([(3, 0.9), (4, 0.5), (8, 0.2), (7, 0.1)], labels=[3, 7], k=3)
    assert got == {"tp": {3}, "fp": {4, 8}, "fn": {7}}


def test_top_k_all_positive_leaves_the_missing_positive_uncounted():
    # No negative in the top 2 outranks positive 2, which is below the cut.
    got = _counts([(0, 0.9), (1, 0.8), (5, 0.7)], labels=[0, 1, 2], k=2)
    assert got == {"tp": {0, 1}, "fp": set(), "fn": set()}


def test_ties_are_neither_tp_nor_fn_nor_fp():
    # Strict comparisons: positive 1 ties negative 2 (not above it: not TP; not below
    # it: not FN); negative 2 is not above positive 1 (not FP).
    got = _counts([(1, 0.5), (2, 0.5), (3, 0.1)], labels=[1])
    assert got == {"tp": set(), "fp": set(), "fn": set()}


def test_video_without_positives_has_no_outcome():
    got = _counts([(1, 0.9), (2, 0.5)], labels=[])
    assert got == {"tp": set(), "fp": set(), "fn": set()}


def test_only_the_top_k_columns_count():
    # Negative 9 beyond the top 2 is not a false positive even though it is above
    # nothing: it is simply not among the predictions analysed.
    got = _counts([(1, 0.9), (2, 0.8), (9, 0.7), (3, 0.6)], labels=[1, 2, 3], k=2)
    assert got["fp"] == set() and got["tp"] == {1, 2} and got["fn"] == set()


def test_padding_of_short_submission_lines_is_no_prediction():
    # A line with two pairs, padded with index -1 / score 0 (Submission's padding).
    got = _counts([(4, 0.9), (1, 0.5), (-1, 0.0), (-1, 0.0)], labels=[1, 9])
    assert got == {"tp": set(), "fp": {4}, "fn": {1, 9}}
    acc = OutcomeAccumulator(num_classes=10, k=20)
    indptr, flat = _csr([[1, 9]])
    acc.add(np.asarray([[4, 1, -1, -1]]), np.asarray([[0.9, 0.5, 0, 0]], np.float32),
            indptr, flat)
    out = acc.result()
    assert out.ap[1] == 1.0 and out.ap[9] == 0.0 and np.isnan(out.ap[4])


def _literal(idx: np.ndarray, scores: np.ndarray, labels: list[list[int]], num_classes: int,
             k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The definition, one video and one label at a time."""
    tp, fp, fn = (np.zeros(num_classes, np.int64) for _ in range(3))
    for v, positives in enumerate(labels):
        top = {int(c): float(s) for c, s in zip(idx[v, :k], scores[v, :k])}
        negatives = [s for c, s in top.items() if c not in positives]
        # A positive below the cut scores lower than everything in the top k.
        pos_scores = [top.get(c, -np.inf) for c in positives]
        for c in positives:
            s = top.get(c, -np.inf)
            if c in top and all(s > n for n in negatives):
                tp[c] += 1
            if any(s < n for n in negatives):
                fn[c] += 1
        for c, s in top.items():
            if c not in positives and any(s > p for p in pos_scores):
                fp[c] += 1
    return tp, fp, fn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_literal_definition_on_random_videos_with_ties(seed):
    rng = np.random.default_rng(seed)
    n, c, big_k, k = 300, 30, 12, 8
    scores = np.round(rng.random((n, c)), 1)  # coarse: many ties
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :big_k]
    top_scores = np.take_along_axis(scores, idx, axis=1).astype(np.float32)
    labels = [sorted(rng.choice(c, size=rng.integers(0, 5), replace=False).tolist())
              for _ in range(n)]
    indptr, flat = _csr(labels)
    tp, fp, fn, _ = chunk_outcomes(idx, top_scores, indptr, flat, c, k)
    want = _literal(idx, top_scores.astype(np.float64), labels, c, k)
    np.testing.assert_array_equal(tp, want[0])
    np.testing.assert_array_equal(fp, want[1])
    np.testing.assert_array_equal(fn, want[2])


def test_precision_recall_f1_from_the_counts():
    acc = OutcomeAccumulator(num_classes=4, k=20)
    # Video 0: label 0 TP, label 1 FP (above positive 2), 2 FN. Video 1: label 0 TP.
    indptr, flat = _csr([[0, 2], [0]])
    acc.add(np.asarray([[0, 1, 2, 3], [0, 3, 1, 2]]),
            np.asarray([[0.9, 0.8, 0.7, 0.1], [0.9, 0.3, 0.2, 0.1]], np.float32), indptr, flat)
    out = acc.result()
    np.testing.assert_array_equal(out.tp, [2, 0, 0, 0])
    np.testing.assert_array_equal(out.fp, [0, 1, 0, 0])
    np.testing.assert_array_equal(out.fn, [0, 0, 1, 0])
    np.testing.assert_array_equal(out.positives, [2, 0, 1, 0])
    assert out.precision()[0] == 1.0 and out.precision()[1] == 0.0
    assert np.isnan(out.precision()[3]) and np.isnan(out.recall()[1])
    assert out.recall()[2] == 0.0 and out.f1()[0] == 1.0
    assert out.seen().tolist() == [True, True, True, False]


def test_average_precision_equals_sklearn_when_every_label_is_ranked():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(5)
    n, c = 200, 6
    probs = rng.random((n, c)).astype(np.float32)
    truth = rng.random((n, c)) < 0.3
    truth[0] = True  # every class has a positive
    idx = np.argsort(-probs, axis=1)
    scores = np.take_along_axis(probs, idx, axis=1)
    indptr, flat = _csr([np.flatnonzero(row).tolist() for row in truth])
    acc = OutcomeAccumulator(num_classes=c, k=c)
    for a, b in ((0, 70), (70, 200)):  # two chunks: the pooled ranking spans both
        local = indptr[a:b + 1] - indptr[a]
        acc.add(idx[a:b], scores[a:b], local, flat[indptr[a]:indptr[b]])
    got = acc.result().ap
    want = [average_precision_score(truth[:, j], probs[:, j]) for j in range(c)]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_average_precision_counts_positives_below_the_cut_as_never_retrieved():
    acc = OutcomeAccumulator(num_classes=3, k=1)
    # Label 0 is positive in both videos, ranked first only in the first: AP = 1/2.
    indptr, flat = _csr([[0], [0]])
    acc.add(np.asarray([[0, 1], [1, 0]]), np.asarray([[0.9, 0.1], [0.8, 0.2]], np.float32),
            indptr, flat)
    ap = acc.result().ap
    assert ap[0] == pytest.approx(0.5)
    assert np.isnan(ap[1]) and np.isnan(ap[2])


def test_analyse_gives_the_same_counts_whatever_the_chunk_size(tmp_path,
                                                                small_video_store):
    from yt8mkit.data.store import Store

    store = Store(small_video_store[0])
    rng = np.random.default_rng(0)
    writer = PredictionsWriter(tmp_path / "p", store.num_videos, store.num_classes, 50)
    writer.write_dense(np.arange(store.num_videos),
                       rng.random((store.num_videos, store.num_classes)).astype(np.float32))
    predictions = writer.close()
    whole = analyse(predictions, store, chunk_videos=10_000)
    pieces = analyse(Predictions(predictions.path), store, chunk_videos=7)
    for name in ("tp", "fp", "fn", "positives"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(pieces, name))
    np.testing.assert_allclose(whole.ap, pieces.ap)
    assert whole.num_videos == int(np.asarray(store.labelled).sum())
    assert whole.positives.sum() == store.meta.num_labels
    assert whole.tp.sum() > 0 and whole.fp.sum() > 0 and whole.fn.sum() > 0
