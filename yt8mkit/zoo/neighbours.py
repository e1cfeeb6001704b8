"""Nearest-neighbour members of the zoo: a video's labels voted by the training videos
nearest to it (faiss, cosine similarity over the L2-normalised modalities, weighted and
concatenated), each neighbour's vote weighted by ``exp((sim - best_sim) / temperature)``.

No gradient training, so not a registered model: a zoo names them under ``neighbours:``
and they are written in the layout of a trained model (``NAME/oof``, ``NAME/test``,
``NAME/metrics.json``, ``NAME/foldK/done.json``), so that the stack, ``yt8m table`` and the
report take them as any other first-level member. Why they belong in a stack: they err
differently from every network of the zoo (memory of the training videos rather than a
fitted function); measured on dev/ (bench/results/stack_options.md) the LightGBM ensemble
gained from the member although it scores below resnet_like alone.

Fold k's index holds the training videos of the other folds (never the selection split);
fold k's videos get its out-of-fold votes, the selection split and the test videos the
mean of the folds' votes, as the trained models' do. The index is exact (``IndexFlatIP``)
and held in memory: 4 bytes per dimension per training video of a fold (0.1 GB for dev/'s
23,000 videos of 1,152 dims; at YouTube-8M's full 5 million, an approximate index would be
needed). Queries run in chunks, so the outputs stream to disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from yt8mkit.data.folds import fold_ids, selection_rows, train_rows
from yt8mkit.data.predictions import Predictions, PredictionsWriter, top_k_of
from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import (
    guard_config,
    lock_run_dir,
    mark_done,
    prediction_gap,
    read_done,
    write_json,
)
from yt8mkit.train.run import store_folds
from yt8mkit.zoo.config import NeighboursSpec

Report = Callable[[str], None]
_CHUNK = 2048


def _features(store: Store, rows: np.ndarray, spec: NeighboursSpec) -> np.ndarray:
    parts = []
    for modality in store.modalities:
        x = np.asarray(store.video_features(modality)[rows], np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
        parts.append(x * spec.weight(modality))
    out = np.concatenate(parts, axis=1)
    out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-6
    return np.ascontiguousarray(out)


class _FoldIndex:
    """The training videos of one fold, searchable, with their labels."""

    def __init__(self, store: Store, rows: np.ndarray, spec: NeighboursSpec) -> None:
        import faiss

        self.spec = spec
        self.num_classes = store.num_classes
        indptr = np.asarray(store.labels_indptr, np.int64)
        starts, stops = indptr[rows], indptr[rows + 1]
        self.label_counts = stops - starts
        self.label_starts = np.concatenate([[0], np.cumsum(self.label_counts)])
        self.labels = np.concatenate(
            [store.labels_indices[a:b] for a, b in zip(starts, stops)] or [np.zeros(0, int)]
        ).astype(np.int64)
        first = _features(store, rows[:1], spec)
        self.index = faiss.IndexFlatIP(first.shape[1])
        for start in range(0, len(rows), _CHUNK * 4):
            self.index.add(_features(store, rows[start:start + _CHUNK * 4], spec))

    def votes(self, queries: np.ndarray) -> np.ndarray:
        """float32 (len(queries), num_classes): each class's share of the weighted votes."""
        k = min(self.spec.k, self.index.ntotal)
        sims, neighbours = self.index.search(queries, k)
        weights = np.exp((sims - sims[:, :1]) / self.spec.temperature)
        weights /= weights.sum(axis=1, keepdims=True)
        counts = self.label_counts[neighbours]  # (q, k) labels of each neighbour
        query = np.repeat(np.repeat(np.arange(len(queries)), k), counts.ravel())
        weight = np.repeat(weights.ravel(), counts.ravel())
        starts = np.repeat(self.label_starts[neighbours.ravel()], counts.ravel())
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts.ravel()) - counts.ravel(),
                                                     counts.ravel())
        out = np.zeros((len(queries), self.num_classes), np.float64)
        np.add.at(out, (query, self.labels[starts + offset]), weight)
        return out.astype(np.float32)


def run_neighbours(name: str, spec: NeighboursSpec, store: Store, out: Path,
                   test_store: Store | None = None, report: Report | None = None) -> dict:
    """Write the member ``name`` into ``out`` (resumes fold by fold); its metrics."""
    say = report or (lambda message: None)
    lock_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_spec(out, spec)
    final = out / "metrics.json"
    if final.is_file():
        return json.loads(final.read_text())
    if not store.has_labels:
        raise Yt8mError(f"{store.path}: a nearest-neighbour member needs labelled videos")
    folds = store_folds(store)
    fold_list = fold_ids(folds)
    selection = selection_rows(folds)
    test_rows = np.arange(test_store.num_videos) if test_store is not None else np.zeros(0, int)
    per_fold = []
    for fold in fold_list:
        per_fold.append(_run_fold(spec, store, test_store, folds, fold, selection, test_rows,
                                  out / f"fold{fold}"))
        say(f"done {name} fold {fold} ({per_fold[-1]['seconds']:.0f} s)")
    oof = _assemble(out / "oof", store, folds, fold_list, selection, out, spec.top_k, "sel")
    metrics: dict = {"name": name, "model": "neighbours", "frame_level": False,
                     "params": spec.model_dump(mode="json"), "folds": per_fold,
                     "oof_gap": prediction_gap(oof, store, np.flatnonzero(folds >= 0)),
                     "selected_on": "fold"}
    if len(selection):
        metrics["selection_gap"] = prediction_gap(oof, store, selection)
    metrics["test_predictions"] = test_store is not None
    if test_store is not None:
        test = _assemble(out / "test", test_store, None, fold_list, test_rows, out,
                         spec.top_k, "test")
        if test_store.has_labels:
            metrics["test_gap"] = prediction_gap(test, test_store)
    write_json(final, metrics)
    return metrics


def _check_spec(out: Path, spec: NeighboursSpec) -> None:
    guard_config(out, "spec.json", spec.model_dump(mode="json"))


def _run_fold(spec: NeighboursSpec, store: Store, test_store: Store | None,
              folds: np.ndarray, fold: int, selection: np.ndarray, test_rows: np.ndarray,
              fold_dir: Path) -> dict:
    outputs = ("oof", "sel", "oof_rows.npy") + (("test",) if test_store is not None else ())
    done = read_done(fold_dir, outputs)
    if done is not None:
        return done
    began = time.perf_counter()
    index = _FoldIndex(store, train_rows(folds, fold), spec)
    valid = np.flatnonzero(folds == fold)
    # Every part's votes are written as top-K; the selection and test parts are averaged
    # over the folds afterwards (the top-K of each fold is kept, as for trained models).
    parts = [("oof", store, valid), ("sel", store, selection)]
    if test_store is not None:
        parts.append(("test", test_store, test_rows))
    for part, source, rows in parts:
        writer = PredictionsWriter(fold_dir / part, len(rows), store.num_classes, spec.top_k)
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start:start + _CHUNK]
            writer.write_dense(np.arange(start, start + len(chunk)),
                               index.votes(_features(source, chunk, spec)))
        writer.close()
    np.save(fold_dir / "oof_rows.npy", valid)
    summary = {"fold": fold, "train_videos": index.index.ntotal,
               "seconds": time.perf_counter() - began}
    return mark_done(fold_dir, summary, outputs)


def _assemble(path: Path, store: Store, folds: np.ndarray | None, fold_list: list[int],
              mean_rows: np.ndarray, out: Path, top_k: int, part: str) -> Predictions:
    """Out-of-fold rows from their fold; ``mean_rows`` (selection or test) the mean of the
    folds' top-K votes."""
    num_videos = store.num_videos
    writer = PredictionsWriter(path, num_videos, store.num_classes, top_k)
    if folds is not None:
        for fold in fold_list:
            oof = Predictions(out / f"fold{fold}" / "oof")
            rows = np.flatnonzero(folds == fold)
            writer.write_sparse(rows, np.asarray(oof.indices), np.asarray(oof.scores))
    sets = [Predictions(out / f"fold{fold}" / part) for fold in fold_list]
    for start in range(0, len(mean_rows), _CHUNK):
        span = slice(start, start + _CHUNK)
        mean = np.mean([p.dense(span) for p in sets], axis=0)
        indices, scores = top_k_of(mean, top_k)
        writer.write_sparse(mean_rows[span], indices, scores)
    return writer.close()



def run_neighbour_members(specs: dict[str, NeighboursSpec], store: Store, out: Path,
                          test_store: Store | None = None, report: Report | None = None,
                          ) -> dict[str, dict]:
    """Every ``neighbours:`` entry of a zoo into ``out/NAME``; name -> metrics."""
    say = report or (lambda message: None)
    metrics = {}
    for name, spec in specs.items():
        say(f"zoo: nearest-neighbour member {name} (k {spec.k})")
        metrics[name] = run_neighbours(name, spec, store, out / name, test_store, say)
    return metrics
