"""The second level: LightGBM over the first-level models' candidate labels, trained per
fold on the store's folds, so that every out-of-fold ensemble score comes from a model that
never saw that video (these scores become the distillation's soft labels).

Run directory::

    config.json        inputs and settings (a different one is refused)
    features/          the feature table of the training videos (removed when done, see
                       StackConfig.keep_features)
    fold{k}/           model.txt (best iteration only), label_freq.npy, fit_videos.npy,
                       valid_videos.npy (early stopping), oof/ + oof_rows.npy (scores of the
                       fold's videos), done.json
    oof/               the ensemble's out-of-fold prediction set, aligned with the store; the
                       selection split's videos (no fold model trains on them): the fold
                       models' mean probability, as for test videos
    test/              test predictions, the fold models' mean probability
    metrics.json       out-of-fold GAP@20 of the ensemble and of every input model
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from yt8mkit.baselines import frequency_prior
from yt8mkit.data.folds import SELECTION, fold_ids, selection_rows
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.ensemble.candidates import expand_rows
from yt8mkit.ensemble.config import StackConfig
from yt8mkit.ensemble.features import FeatureLayout, build_block, top_k_from_candidates
from yt8mkit.ensemble.table import FeatureTable, FoldRows, ensure_feature_table
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import (
    assemble_folds,
    guard_config,
    is_done,
    lock_run_dir,
    mark_done,
    prediction_gap,
    write_json,
)

Progress = Callable[[str, dict], None]


@dataclass
class FoldStack:
    """What one fold model trained and scored; the row lists let a caller (and the tests)
    check that no fold model scores a video it saw."""

    fold: int
    best_iteration: int
    valid_logloss: float | None
    fit_videos: np.ndarray
    valid_videos: np.ndarray
    scored_videos: np.ndarray
    seconds: float

    @property
    def seen_videos(self) -> np.ndarray:
        return np.union1d(self.fit_videos, self.valid_videos)


@dataclass
class StackResult:
    oof: Predictions
    test: Predictions | None
    metrics: dict
    folds: list[FoldStack] = field(default_factory=list)


def _lgb_params(config: StackConfig) -> dict:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "num_leaves": config.num_leaves,
        "learning_rate": config.learning_rate,
        "min_data_in_leaf": config.min_data_in_leaf,
        "feature_fraction": config.feature_fraction,
        "max_bin": config.max_bin,
        "seed": config.seed,
        # Same inputs, same seed -> same trees, whatever the thread timing.
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.threads,
        "verbosity": -1,
    }


# What a fold's done.json vouches for.
FOLD_OUTPUTS = ("model.txt", "label_freq.npy", "fit_videos.npy", "valid_videos.npy", "oof",
                "oof_rows.npy")


def _fold_done(fold_dir: Path) -> bool:
    return is_done(fold_dir, FOLD_OUTPUTS)


def _load_fold(fold_dir: Path, fold: int) -> FoldStack:
    done = json.loads((fold_dir / "done.json").read_text())
    return FoldStack(
        fold=fold,
        best_iteration=done["best_iteration"],
        valid_logloss=done["valid_logloss"],
        fit_videos=np.load(fold_dir / "fit_videos.npy"),
        valid_videos=np.load(fold_dir / "valid_videos.npy"),
        scored_videos=np.load(fold_dir / "oof_rows.npy"),
        seconds=done["seconds"],
    )


def _split_train(
    train_videos: np.ndarray, config: StackConfig, fold: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, valid) videos: a seeded share of the training videos for early stopping. Split
    by video, not by row, so a video's candidates are all on one side."""
    rng = np.random.default_rng([config.seed, fold])
    num_valid = round(len(train_videos) * config.validation_fraction)
    if len(train_videos) < 2:
        num_valid = 0
    chosen = np.zeros(len(train_videos), bool)
    chosen[rng.choice(len(train_videos), size=num_valid, replace=False)] = True
    return train_videos[~chosen], train_videos[chosen]


def _dataset(
    table: FeatureTable, videos: np.ndarray, freq: np.ndarray, config: StackConfig,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    rows = expand_rows(table.indptr, videos)
    return lgb.Dataset(
        FoldRows(table, rows, freq, batch_size=max(4096, config.chunk_videos)),
        label=np.asarray(table.targets[rows], np.float32),
        feature_name=table.layout.columns,
        categorical_feature=[table.layout.label_column],
        reference=reference,
        params={"max_bin": config.max_bin, "verbosity": -1, "seed": config.seed},
        free_raw_data=True,
    )


def _train_fold(
    table: FeatureTable, store: Store, folds: np.ndarray, fold: int, fold_dir: Path,
    config: StackConfig, progress: Progress | None,
) -> FoldStack:
    began = time.perf_counter()
    fold_dir.mkdir(parents=True, exist_ok=True)
    labelled = np.asarray(store.labelled, bool)
    train_videos = np.flatnonzero((folds != fold) & (folds != SELECTION) & labelled)
    scored_videos = np.flatnonzero(folds == fold)
    fit_videos, valid_videos = _split_train(train_videos, config, fold)
    freq = frequency_prior(store, train_videos)
    train_set = _dataset(table, fit_videos, freq, config)
    callbacks: list[Callable[..., Any]] = []
    valid_sets: list[lgb.Dataset] = []
    if len(valid_videos):
        valid_sets = [_dataset(table, valid_videos, freq, config, reference=train_set)]
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, verbose=False))
    booster = lgb.train(
        _lgb_params(config), train_set, num_boost_round=config.n_estimators,
        valid_sets=valid_sets, valid_names=["valid"][: len(valid_sets)], callbacks=callbacks,
    )
    best_iteration = booster.best_iteration or booster.current_iteration()
    valid_logloss = None
    if valid_sets:
        valid_logloss = float(booster.best_score["valid"]["binary_logloss"])
    # Files of a fold count only once done.json is written (last), so no temp files here.
    booster.save_model(fold_dir / "model.txt", num_iteration=best_iteration)
    np.save(fold_dir / "label_freq.npy", freq)
    np.save(fold_dir / "fit_videos.npy", fit_videos)
    np.save(fold_dir / "valid_videos.npy", valid_videos)

    # Scores of the held-out fold, by this model: the out-of-fold ensemble predictions.
    writer = PredictionsWriter(fold_dir / "oof", len(scored_videos), store.num_classes,
                               config.top_k)
    for start in range(0, len(scored_videos), config.chunk_videos):
        videos = scored_videos[start : start + config.chunk_videos]
        rows = expand_rows(table.indptr, videos)
        block = np.array(table.table[rows], np.float32)
        labels = np.asarray(table.labels[rows])
        block[:, table.layout.freq_column] = freq[labels]
        probs = booster.predict(block, num_iteration=best_iteration,
                                num_threads=config.threads)
        indptr = np.concatenate([[0], np.cumsum(table.indptr[videos + 1] - table.indptr[videos])])
        indices, scores = top_k_from_candidates(indptr, labels, np.asarray(probs), config.top_k,
                                                store.num_classes)
        writer.write_sparse(np.arange(start, start + len(videos)), indices, scores)
    writer.close()
    np.save(fold_dir / "oof_rows.npy", scored_videos)
    seconds = time.perf_counter() - began
    done = {"fold": fold, "best_iteration": best_iteration, "valid_logloss": valid_logloss,
            "fit_videos": len(fit_videos), "valid_videos": len(valid_videos),
            "scored_videos": len(scored_videos), "seconds": seconds}
    mark_done(fold_dir, done, FOLD_OUTPUTS)
    if progress is not None:
        progress("fold", done)
    return _load_fold(fold_dir, fold)


def _assemble_oof(
    store: Store, sets: dict[str, Predictions], out: Path, all_folds: list[int],
    layout: FeatureLayout, config: StackConfig,
) -> Predictions:
    writer = PredictionsWriter(out / "oof", store.num_videos, store.num_classes, config.top_k,
                               store=str(store.path))
    assemble_folds(writer, [out / f"fold{fold}" for fold in all_folds])
    selected = selection_rows(store.folds())
    if len(selected):
        _score_by_all_folds(sets, selected, writer, out, all_folds, layout, config,
                            store.num_classes, None)
    return writer.close()


def _predict_test(
    test_sets: dict[str, Predictions], out: Path, all_folds: list[int], layout: FeatureLayout,
    config: StackConfig, num_classes: int, progress: Progress | None,
) -> Predictions:
    num_videos = len(next(iter(test_sets.values())))
    writer = PredictionsWriter(out / "test", num_videos, num_classes, config.top_k)
    _score_by_all_folds(test_sets, np.arange(num_videos), writer, out, all_folds, layout,
                        config, num_classes, progress)
    return writer.close()


def _score_by_all_folds(
    sets_by_name: dict[str, Predictions], videos: np.ndarray, writer: PredictionsWriter,
    out: Path, all_folds: list[int], layout: FeatureLayout, config: StackConfig,
    num_classes: int, progress: Progress | None,
) -> None:
    """Mean probability of the fold models over the candidates of ``videos`` (rows of
    ``sets_by_name``), written at the same rows of ``writer``."""
    boosters = [lgb.Booster(model_file=str(out / f"fold{f}" / "model.txt")) for f in all_folds]
    freqs = [np.load(out / f"fold{f}" / "label_freq.npy") for f in all_folds]
    sets = [sets_by_name[name] for name in layout.model_names]
    for start in range(0, len(videos), config.chunk_videos):
        chunk = videos[start : start + config.chunk_videos]
        block = build_block(
            [(np.asarray(p.indices[chunk]), np.asarray(p.scores[chunk])) for p in sets],
            layout, config.top_n, num_classes,
        )
        total = np.zeros(block.num_rows, np.float64)
        for booster, freq in zip(boosters, freqs):
            block.features[:, layout.freq_column] = freq[block.labels]
            total += booster.predict(block.features, num_threads=config.threads)
        indices, scores = top_k_from_candidates(
            block.indptr, block.labels, (total / len(boosters)).astype(np.float32),
            config.top_k, num_classes,
        )
        writer.write_sparse(chunk, indices, scores)
        if progress is not None:
            progress("test", {"videos": start + len(chunk), "of": len(videos)})


def oof_gap(predictions: Predictions, store: Store, k: int = 20,
            block_videos: int = 65536, rows: np.ndarray | None = None) -> float:
    """GAP@k of a prediction set over the store's labelled videos (among ``rows``, by
    default the folds' videos, not the selection split's): rundir.prediction_gap."""
    if rows is None:
        rows = np.flatnonzero(np.asarray(store.folds()) != SELECTION)
    return prediction_gap(predictions, store, np.sort(rows), k, block_videos)


def _open_inputs(dirs: dict[str, str | os.PathLike[str]], num_videos: int | None,
                 num_classes: int, what: str) -> dict[str, Predictions]:
    sets = {name: Predictions(path) for name, path in dirs.items()}
    for name, p in sets.items():
        if num_videos is not None and len(p) != num_videos:
            raise Yt8mError(f"{p.path}: {what} predictions of {name!r} cover {len(p)} videos, "
                            f"the store has {num_videos}")
        if p.meta.num_classes != num_classes:
            raise Yt8mError(f"{p.path}: {what} predictions of {name!r} have "
                            f"{p.meta.num_classes} classes, the store {num_classes}")
    return sets


def _check_run_config(out: Path, key: dict) -> None:
    guard_config(out, "config.json", key)


def run_stack(
    prediction_dirs: dict[str, str | os.PathLike[str]],
    store: Store,
    out_dir: str | os.PathLike[str],
    config: StackConfig | None = None,
    test_prediction_dirs: dict[str, str | os.PathLike[str]] | None = None,
    progress: Progress | None = None,
) -> StackResult:
    """Stack the first-level out-of-fold prediction sets ``prediction_dirs`` (name -> dir,
    aligned with ``store``) with one LightGBM model per fold of ``store.folds()``.

    Folds already done in ``out_dir`` are skipped. Test predictions (same model names,
    aligned with a test store) are the mean of the fold models.
    """
    config = config or StackConfig()
    lock_run_dir(out_dir)
    out = Path(out_dir)
    sets, test_sets = _open_members(prediction_dirs, test_prediction_dirs, store)
    _check_run_config(out, {
        "inputs": {n: str(Path(p).resolve()) for n, p in sorted(prediction_dirs.items())},
        "store": str(store.path.resolve()),
        "config": config.result_key(),
    })
    folds = store.folds()
    all_folds = fold_ids(folds)
    layout = FeatureLayout(tuple(sets), config.rank_features, config.context_features)
    results, retrained = _train_folds(sets, store, folds, out, layout, config, progress)

    # Outputs assembled from the folds are stale when a fold was (re)trained.
    if retrained or not Predictions.exists(out / "oof"):
        oof = _assemble_oof(store, sets, out, all_folds, layout, config)
    else:
        oof = Predictions(out / "oof")
    test = None
    if test_sets is not None:
        if retrained or not Predictions.exists(out / "test"):
            test = _predict_test(test_sets, out, all_folds, layout, config, store.num_classes,
                                 progress)
        else:
            test = Predictions(out / "test")
    metrics = _stack_metrics(oof, sets, store, folds, results, config)
    write_json(out / "metrics.json", metrics)
    return StackResult(oof=oof, test=test, metrics=metrics, folds=results)


def _open_members(
    prediction_dirs: dict[str, str | os.PathLike[str]],
    test_prediction_dirs: dict[str, str | os.PathLike[str]] | None, store: Store,
) -> tuple[dict[str, Predictions], dict[str, Predictions] | None]:
    """The members' out-of-fold (and test) prediction sets, checked against each other."""
    if not prediction_dirs:
        raise Yt8mError("run_stack needs at least one first-level prediction set")
    # Models in name order: LightGBM's trees depend on the column order, and the same
    # members must give the same ensemble however they were listed.
    prediction_dirs = dict(sorted(prediction_dirs.items()))
    names = tuple(prediction_dirs)
    sets = _open_inputs(prediction_dirs, store.num_videos, store.num_classes, "out-of-fold")
    if test_prediction_dirs is None:
        return sets, None
    test_prediction_dirs = dict(sorted(test_prediction_dirs.items()))
    if set(test_prediction_dirs) != set(names):
        raise Yt8mError(f"test predictions are for models {sorted(test_prediction_dirs)}, "
                        f"out-of-fold ones for {sorted(names)}")
    test_sets = _open_inputs(test_prediction_dirs, None, store.num_classes, "test")
    sizes = {len(p) for p in test_sets.values()}
    if len(sizes) != 1:
        raise Yt8mError(f"test prediction sets cover different numbers of videos: {sizes}")
    return sets, test_sets


def _train_folds(sets: dict[str, Predictions], store: Store, folds: np.ndarray, out: Path,
                 layout: FeatureLayout, config: StackConfig, progress: Progress | None,
                 ) -> tuple[list[FoldStack], bool]:
    """Every fold's LightGBM model (done ones read back); whether any was trained."""
    results: list[FoldStack] = []
    table: FeatureTable | None = None
    for fold in fold_ids(folds):
        fold_dir = out / f"fold{fold}"
        if _fold_done(fold_dir):
            results.append(_load_fold(fold_dir, fold))
            continue
        if table is None:
            table = ensure_feature_table(sets, store, out / "features", layout, config, progress)
        results.append(_train_fold(table, store, folds, fold, fold_dir, config, progress))
    retrained = table is not None
    del table
    if not config.keep_features and (out / "features").exists():
        shutil.rmtree(out / "features")
    return results, retrained


def _stack_metrics(oof: Predictions, sets: dict[str, Predictions], store: Store,
                   folds: np.ndarray, results: list[FoldStack], config: StackConfig,
                   ) -> dict[str, Any]:
    inputs_gap = {name: oof_gap(p, store) for name, p in sets.items()}
    best = max(inputs_gap, key=inputs_gap.__getitem__)
    metrics: dict[str, Any] = {
        "oof_gap": oof_gap(oof, store),
        "inputs_oof_gap": inputs_gap,
        "best_single": {"name": best, "oof_gap": inputs_gap[best]},
        "folds": [{"fold": r.fold, "best_iteration": r.best_iteration,
                   "valid_logloss": r.valid_logloss, "seconds": r.seconds} for r in results],
        "config": config.model_dump(),
    }
    metrics["gain_over_best_single"] = metrics["oof_gap"] - inputs_gap[best]
    selected = selection_rows(folds)
    if len(selected):
        # Leak-free: neither LightGBM nor any input model trained on these videos.
        metrics["selection_gap"] = oof_gap(oof, store, rows=selected)
        metrics["inputs_selection_gap"] = {name: oof_gap(p, store, rows=selected)
                                           for name, p in sets.items()}
    return metrics
