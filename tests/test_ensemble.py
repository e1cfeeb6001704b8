"""The second level: candidate sets and feature rows on a hand-made example, no fold
model scoring a video it saw, resume and determinism, and an ensemble of two complementary
noisy models beating both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yt8mkit.data.folds import write_folds
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate
from yt8mkit.ensemble import StackConfig, run_stack
from yt8mkit.ensemble.candidates import candidate_labels, expand_rows
from yt8mkit.ensemble.features import FeatureLayout, build_block, top_k_from_candidates
from yt8mkit.errors import Yt8mError

NAN = np.nan

# Three videos, two models, top-3 lists, 10 classes.
A_IDX = np.array([[0, 1, 2], [3, 4, 5], [7, 8, 9]])
A_SC = np.array([[0.9, 0.5, 0.25], [0.75, 0.5, 0.125]], np.float32)
B_IDX = np.array([[2, 5, 0], [4, 6, 7], [9, 8, 1]])
B_SC = np.array([[0.5, 0.25, 0.125], [0.5, 0.25, 0.0625]], np.float32)
A_SC = np.vstack([A_SC, [[0.5, 0.25, 0.125]]])
B_SC = np.vstack([B_SC, [[0.75, 0.5, 0.25]]])


def gap_at_20(indices: np.ndarray, scores: np.ndarray, store: Store) -> float:
    """GAP@20 from its definition, for sparse top-k predictions and a store's labels."""
    top = min(20, indices.shape[1])
    truth = store.labels_dense(np.arange(store.num_videos))
    hits = np.take_along_axis(truth, indices[:, :top].astype(np.int64), axis=1).ravel()
    pooled = np.asarray(scores[:, :top], np.float64).ravel()
    hits = hits[np.argsort(-pooled, kind="stable")]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / truth.sum())


def test_candidates_are_the_union_of_top_n() -> None:
    indptr, labels = candidate_labels([A_IDX, B_IDX], top_n=2, num_classes=10)
    sets = [labels[indptr[i] : indptr[i + 1]].tolist() for i in range(3)]
    assert sets == [[0, 1, 2, 5], [3, 4, 6], [7, 8, 9]]
    indptr, labels = candidate_labels([A_IDX], top_n=5, num_classes=10)  # K < top_n
    assert np.diff(indptr).tolist() == [3, 3, 3]


def test_feature_rows_on_a_hand_made_example() -> None:
    layout = FeatureLayout(("a", "b"))
    freq = np.arange(10, dtype=np.float32) / 10
    truth = (np.array([0, 1, 2, 4]), np.array([2, 6, 8, 9]))  # video 0: {2}, 1: {6}, 2: {8, 9}
    block = build_block([(A_IDX, A_SC), (B_IDX, B_SC)], layout, 2, 10, freq, truth)
    assert layout.columns == [
        "score_0_a", "score_1_b", "rank_0_a", "rank_1_b", "top1_0_a", "top1_1_b",
        "mean_score", "num_models", "label", "label_freq",
    ]
    assert block.indptr.tolist() == [0, 4, 7, 10]
    assert block.labels.tolist() == [0, 1, 2, 5, 3, 4, 6, 7, 8, 9]
    expected = np.array([
        # score a, score b, rank a, rank b, top1 a, top1 b, mean, count, label, freq
        [0.9, 0.125, 0, 2, 0.9, 0.5, 0.5125, 2, 0, 0.0],  # b's 3rd: beyond top_n, still a score
        [0.5, NAN, 1, NAN, 0.9, 0.5, 0.25, 1, 1, 0.1],
        [0.25, 0.5, 2, 0, 0.9, 0.5, 0.375, 2, 2, 0.2],
        [NAN, 0.25, NAN, 1, 0.9, 0.5, 0.125, 1, 5, 0.5],
        [0.75, NAN, 0, NAN, 0.75, 0.5, 0.375, 1, 3, 0.3],
        [0.5, 0.5, 1, 0, 0.75, 0.5, 0.5, 2, 4, 0.4],
        [NAN, 0.25, NAN, 1, 0.75, 0.5, 0.125, 1, 6, 0.6],
        [0.5, NAN, 0, NAN, 0.5, 0.75, 0.25, 1, 7, 0.7],
        [0.25, 0.5, 1, 1, 0.5, 0.75, 0.375, 2, 8, 0.8],
        [0.125, 0.75, 2, 0, 0.5, 0.75, 0.4375, 2, 9, 0.9],
    ], np.float32)
    np.testing.assert_allclose(block.features, expected, rtol=1e-6)
    assert block.targets is not None
    assert block.targets.tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 1, 1]
    # Without a frequency table the column is left missing, to be filled per fold.
    alone = build_block([(A_IDX, A_SC)], FeatureLayout(("a",)), 2, 10)
    assert np.isnan(alone.features[:, -1]).all()


def test_top_k_from_candidates_sorts_and_pads() -> None:
    indptr = np.array([0, 3, 4, 4])
    labels = np.array([1, 4, 7, 2])
    scores = np.array([0.2, 0.9, 0.2, 0.5], np.float32)
    idx, sc = top_k_from_candidates(indptr, labels, scores, k=4, num_classes=10)
    # Ties by lower label; short rows padded with their lowest non-candidates at 0.
    assert idx.tolist() == [[4, 1, 7, 0], [2, 0, 1, 3], [0, 1, 2, 3]]
    np.testing.assert_allclose(sc, [[0.9, 0.2, 0.2, 0], [0.5, 0, 0, 0], [0, 0, 0, 0]])


def test_expand_rows() -> None:
    indptr = np.array([0, 2, 2, 5])
    assert expand_rows(indptr, np.array([2, 0, 1])).tolist() == [2, 3, 4, 0, 1]


# ---------------------------------------------------------------- the stack on synthetic data


@pytest.fixture(scope="module")
def stack_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict[str, Path]]:
    """A small store and two noisy first-level "models", each good on one half of the
    classes and weak on the other: complementary, so a stack should beat both."""
    root = tmp_path_factory.mktemp("stack")
    generate(SynthConfig(videos=1200, classes=30, seed=0, rgb_dim=8, audio_dim=4), root / "syn")
    ingest([root / "syn"], root / "store", IngestConfig(workers=1, num_classes=30))
    store = Store(root / "store")
    write_folds(store, 5, seed=0)
    truth = store.labels_dense(np.arange(store.num_videos))
    rng = np.random.default_rng(0)
    strong = np.arange(30) < 15
    dirs = {}
    for name, good in (("first_half", strong), ("second_half", ~strong)):
        signal = np.where(good, 2.0, 0.3) * (2 * truth - 1)
        logits = signal - 2.0 + rng.normal(0, 1.5, truth.shape)
        writer = PredictionsWriter(root / name, store.num_videos, 30, 20)
        writer.write_dense(np.arange(store.num_videos), 1 / (1 + np.exp(-logits)))
        writer.close()
        dirs[name] = root / name
    return store, dirs


FAST = StackConfig(top_n=10, top_k=20, num_leaves=15, learning_rate=0.2, n_estimators=100,
                   early_stopping_rounds=10, min_data_in_leaf=20, threads=1, chunk_videos=500)


def test_stack_beats_best_single_without_leakage(
    stack_inputs: tuple[Store, dict[str, Path]], tmp_path: Path
) -> None:
    store, dirs = stack_inputs
    result = run_stack(dirs, store, tmp_path / "run", FAST, test_prediction_dirs=dirs)
    folds = store.folds()
    # Every fold model scores exactly its fold and never saw a video of it, not even for
    # early stopping; together the folds score every video once.
    scored = []
    for fold in result.folds:
        assert np.array_equal(fold.scored_videos, np.flatnonzero(folds == fold.fold))
        assert np.intersect1d(fold.seen_videos, fold.scored_videos).size == 0
        assert np.all(folds[fold.seen_videos] != fold.fold)
        assert len(fold.valid_videos) > 0 and fold.best_iteration >= 1
        scored.append(fold.scored_videos)
    assert np.array_equal(np.sort(np.concatenate(scored)), np.arange(store.num_videos))

    singles = {n: gap_at_20(Predictions(d).indices, Predictions(d).scores, store)
               for n, d in dirs.items()}
    ensemble = gap_at_20(result.oof.indices, result.oof.scores, store)
    assert ensemble > max(singles.values()) + 0.2, (ensemble, singles)
    # It learnt which model to trust for which label: well above a plain average too.
    rows = np.arange(store.num_videos)
    mean = sum(Predictions(d).dense(rows) for d in dirs.values()) / len(dirs)
    mean_idx = np.argsort(-mean, axis=1, kind="stable")[:, :20]
    mean_gap = gap_at_20(mean_idx, np.take_along_axis(mean, mean_idx, axis=1), store)
    assert ensemble > mean_gap + 0.1, (ensemble, mean_gap)
    # Probabilities, never hard 0/1 labels, sorted highest first.
    scores = np.asarray(result.oof.scores, np.float32)
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert len(np.unique(scores)) > 100

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["oof_gap"] == pytest.approx(ensemble, abs=2e-3)
    for name, value in singles.items():
        assert metrics["inputs_oof_gap"][name] == pytest.approx(value, abs=2e-3)
    assert metrics["best_single"]["name"] in singles
    assert not (tmp_path / "run" / "features").exists()
    assert result.test is not None and len(result.test) == store.num_videos
    # The test inputs are the out-of-fold ones here: the fold models' mean does about as
    # well (a little better: each fold model saw 4/5 of these videos).
    assert gap_at_20(result.test.indices, result.test.scores, store) > ensemble - 0.02


def test_stack_resumes_and_is_deterministic(
    stack_inputs: tuple[Store, dict[str, Path]], tmp_path: Path
) -> None:
    store, dirs = stack_inputs
    config = FAST.model_copy(update={"n_estimators": 15})
    first = run_stack(dirs, store, tmp_path / "a", config)
    # An interrupted run: one fold's outputs are gone, the others are kept and skipped.
    done = (tmp_path / "a" / "fold0" / "done.json").read_text()
    model = (tmp_path / "a" / "fold0" / "model.txt").read_bytes()
    (tmp_path / "a" / "fold3" / "done.json").unlink()
    calls: list[str] = []
    again = run_stack(dirs, store, tmp_path / "a", config,
                      progress=lambda kind, info: calls.append(f"{kind}{info.get('fold', '')}"))
    assert [c for c in calls if c.startswith("fold")] == ["fold3"]
    assert (tmp_path / "a" / "fold0" / "done.json").read_text() == done
    assert (tmp_path / "a" / "fold0" / "model.txt").read_bytes() == model
    other = run_stack(dirs, store, tmp_path / "b", config)
    # The same members listed in another order: the same ensemble.
    reordered = run_stack(dict(reversed(list(dirs.items()))), store, tmp_path / "c", config)
    assert len(dirs) > 1
    for result in (again, other, reordered):
        np.testing.assert_array_equal(result.oof.indices, first.oof.indices)
        np.testing.assert_array_equal(result.oof.scores, first.oof.scores)
    with pytest.raises(Yt8mError, match=r"another config \(differs at config\.num_leaves\)"):
        run_stack(dirs, store, tmp_path / "a", config.model_copy(update={"num_leaves": 7}))
