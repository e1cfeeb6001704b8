"""Nearest-neighbour zoo members: votes equal a brute-force computation, no fold votes
with its own videos or the selection split, the layout the stack reads, resume and the
settings guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import build_synthetic_store
from yt8mkit.data.folds import SELECTION, train_rows, write_folds
from yt8mkit.data.predictions import Predictions, top_k_of
from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError
from yt8mkit.zoo.config import NeighboursSpec, ZooConfig
from yt8mkit.zoo.neighbours import run_neighbours
from yt8mkit.zoo.table import collect_rows


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Store]:
    root = tmp_path_factory.mktemp("neighbours")
    store_path, test_path = build_synthetic_store(
        root, videos=300, classes=12, seed=5, rgb_dim=24, audio_dim=8, test_videos=60,
        label_test=True)
    assert test_path is not None
    store = Store(store_path)
    write_folds(store, 5, 0, selection_fraction=0.1)
    return store, Store(test_path)


def _brute_force(store: Store, index_rows: np.ndarray, query_rows: np.ndarray,
                 spec: NeighboursSpec) -> np.ndarray:
    def features(rows: np.ndarray) -> np.ndarray:
        parts = []
        for m in store.modalities:
            x = np.asarray(store.video_features(m)[rows], np.float64)
            parts.append(x / np.linalg.norm(x, axis=1, keepdims=True) * spec.weight(m))
        x = np.concatenate(parts, axis=1)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    sims = features(query_rows) @ features(index_rows).T
    out = np.zeros((len(query_rows), store.num_classes))
    for i, row in enumerate(sims):
        nearest = np.argsort(-row, kind="stable")[: spec.k]
        weights = np.exp((row[nearest] - row[nearest[0]]) / spec.temperature)
        for j, w in zip(nearest, weights / weights.sum()):
            out[i, store.labels_of(int(index_rows[j]))] += w
    return out


def test_out_of_fold_votes_equal_brute_force_and_never_use_own_fold_or_selection(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    store, test = stores
    spec = NeighboursSpec(k=7, temperature=0.2, weights={"audio": 0.5}, top_k=20)
    metrics = run_neighbours("knn", spec, store, tmp_path / "knn", test)
    folds = store.folds()
    for fold in range(5):
        index_rows = train_rows(folds, fold)
        assert not np.isin(index_rows, np.flatnonzero(folds == SELECTION)).any()
        assert metrics["folds"][fold]["train_videos"] == len(index_rows)
        valid = np.flatnonzero(folds == fold)
        expected = _brute_force(store, index_rows, valid, spec)
        got = Predictions(tmp_path / "knn" / f"fold{fold}" / "oof")
        want_idx, want_scores = top_k_of(expected.astype(np.float32), 12)
        # Only positive votes are compared: the zero tail's order is arbitrary.
        positive = want_scores > 0
        np.testing.assert_array_equal(np.asarray(got.indices)[positive], want_idx[positive])
        np.testing.assert_allclose(np.asarray(got.scores)[positive], want_scores[positive],
                                   rtol=1e-4, atol=1e-6)
    assert {"oof_gap", "selection_gap", "test_gap"} <= set(metrics)
    assert 0.0 < metrics["selection_gap"] <= 1.0


def test_selection_and_test_rows_get_the_mean_of_the_folds(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    store, test = stores
    spec = NeighboursSpec(k=5, top_k=20)
    run_neighbours("knn", spec, store, tmp_path / "knn", test)
    folds = store.folds()
    selection = np.flatnonzero(folds == SELECTION)
    mean = np.mean([_brute_force(store, train_rows(folds, f), selection, spec)
                    for f in range(5)], axis=0)
    oof = Predictions(tmp_path / "knn" / "oof").dense(selection)
    # The mean of each fold's top 12 classes (all of them): equal to the dense mean.
    np.testing.assert_allclose(oof, mean, rtol=1e-4, atol=1e-6)


def test_a_rerun_reads_back_and_other_settings_are_refused(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    store, test = stores
    first = run_neighbours("knn", NeighboursSpec(k=5), store, tmp_path / "knn", test)
    (tmp_path / "knn" / "metrics.json").unlink()  # as if killed before the summary
    (tmp_path / "knn" / "fold4" / "done.json").unlink()
    again = run_neighbours("knn", NeighboursSpec(k=5), store, tmp_path / "knn", test)
    assert again["oof_gap"] == first["oof_gap"]
    assert again["test_gap"] == first["test_gap"]
    with pytest.raises(Yt8mError, match=r"another config \(differs at k\)"):
        run_neighbours("knn", NeighboursSpec(k=9), store, tmp_path / "knn", test)


def test_a_zoo_names_neighbours_as_members_and_the_table_shows_them(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    store, test = stores
    zoo = ZooConfig.model_validate({"models": {"logistic": {"model": {"name": "logistic"}}},
                                    "neighbours": {"knn": {"k": 5}}})
    assert zoo.member_names() == ["logistic", "knn"]
    run_neighbours("knn", zoo.neighbours["knn"], store, tmp_path / "knn", test)
    rows = {r.name: r for r in collect_rows(tmp_path)}
    assert rows["knn"].selection_gap is not None and rows["knn"].test_gap is not None
    with pytest.raises(ValueError, match="share their names"):
        ZooConfig.model_validate({"models": {"knn": {"model": {"name": "logistic"}}},
                                  "neighbours": {"knn": {}}})
    with pytest.raises(ValueError, match="kk"):
        ZooConfig.model_validate({"models": {}, "neighbours": {"knn": {"kk": 3}}})
    assert json.loads((tmp_path / "knn" / "spec.json").read_text())["k"] == 5
