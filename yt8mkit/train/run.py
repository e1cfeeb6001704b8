"""One model over the folds: out-of-fold predictions for every training video, test
predictions averaged over the fold models, and the run's metrics.

Run directory::

    config.yaml            the resolved TrainConfig (a different one is refused)
    fold{k}/               best.pt, last.pt, metrics.json, oof/ (held-out part), done.json
    oof/                   top-K predictions of each training video by the model not seeing it
    test/                  top-K test predictions, the fold models' mean probability
    submission.csv         Kaggle submission of test/
    metrics.json           per-fold and out-of-fold GAP@20 and BCE, test GAP when labelled
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml
from torch import nn

from yt8mkit.data.folds import write_folds
from yt8mkit.data.store import Store, StoreError
from yt8mkit.data.submission import write_submission
from yt8mkit.errors import Yt8mError
from yt8mkit.metrics import GapAccumulator
from yt8mkit.rundir import lock_run_dir
from yt8mkit.train.batches import TargetFn
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.predictions import Predictions, PredictionsWriter
from yt8mkit.train.trainer import (
    Progress,
    load_best,
    predict_batches,
    resolve_device,
    train_fold,
)

# fold -> the network of that fold, when it is not a registry model (distillation's final
# model, built over the students trained without that fold).
FoldModelFactory = Callable[[int], nn.Module]


def store_folds(store: Store) -> np.ndarray:
    try:
        return store.folds()
    except StoreError:
        return write_folds(store)


def check_run_config(out: Path, config: TrainConfig) -> None:
    path = out / "config.yaml"
    if path.is_file():
        # Compared as validated configs, not as text: a run written before a new setting
        # existed holds that setting's default, and still resumes.
        if TrainConfig.model_validate(yaml.safe_load(path.read_text())) != config:
            raise Yt8mError(
                f"{out}: this run directory holds another config; use a new --out "
                f"(runs are never overwritten in place)"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_yaml())


def _fold_done(fold_dir: Path) -> bool:
    return (fold_dir / "done.json").is_file() and Predictions.exists(fold_dir / "oof")


def run_fold(
    config: TrainConfig, store: Store, folds: np.ndarray, fold: int, out: Path,
    progress: Progress | None = None, model_factory: FoldModelFactory | None = None,
    targets: TargetFn | None = None,
) -> dict:
    fold_dir = out / f"fold{fold}"
    if _fold_done(fold_dir):
        return json.loads((fold_dir / "done.json").read_text())
    train_rows = np.flatnonzero(folds != fold)
    valid_rows = np.flatnonzero(folds == fold)
    factory = _for_fold(model_factory, fold)
    result = train_fold(config, store, train_rows, valid_rows, fold_dir, progress,
                        factory, targets)
    device = resolve_device(config)
    model = load_best(config, store, fold_dir, device, factory)
    writer = PredictionsWriter(fold_dir / "oof", len(valid_rows), store.num_classes, config.top_k)
    done = 0  # predict_batches keeps the order of valid_rows
    for rows, probs in predict_batches(model, config, store, valid_rows, device):
        writer.write_dense(np.arange(done, done + len(rows)), probs)
        done += len(rows)
    writer.close()
    np.save(fold_dir / "oof_rows.npy", valid_rows)
    summary = {"fold": fold, **result.__dict__}
    (fold_dir / "done.json").write_text(json.dumps(summary, indent=2))
    return summary


def _for_fold(factory: FoldModelFactory | None, fold: int) -> Callable[[], nn.Module] | None:
    return None if factory is None else (lambda: factory(fold))


def assemble_oof(store: Store, folds: np.ndarray, out: Path, top_k: int) -> Predictions:
    """The out-of-fold prediction set from the folds' held-out parts."""
    writer = PredictionsWriter(out / "oof", store.num_videos, store.num_classes, top_k)
    for fold in np.unique(folds):
        part = Predictions(out / f"fold{fold}" / "oof")
        rows = np.load(out / f"fold{fold}" / "oof_rows.npy")
        writer.write_sparse(rows, np.asarray(part.indices), np.asarray(part.scores))
    return writer.close()


def prediction_gap(store: Store, predictions: Predictions) -> float:
    """GAP@20 of a prediction set against the store's labels, chunk by chunk."""
    accumulator = GapAccumulator(k=20)
    for start in range(0, store.num_videos, 8192):
        rows = np.arange(start, min(start + 8192, store.num_videos))
        accumulator.add_top_k(np.asarray(predictions.indices[rows], np.int64),
                              np.asarray(predictions.scores[rows], np.float32),
                              store.labels_dense(rows))
    return accumulator.gap()


def predict_test(
    config: TrainConfig, store: Store, test_store: Store, out: Path, folds: Sequence[int],
    model_factory: FoldModelFactory | None = None,
) -> Predictions:
    """Mean probability of the fold models, top-K; one batch of test videos at a time."""
    device = resolve_device(config)
    models = [load_best(config, store, out / f"fold{f}", device, _for_fold(model_factory, f))
              for f in folds]
    writer = PredictionsWriter(out / "test", test_store.num_videos, store.num_classes,
                               config.top_k)
    rows = np.arange(test_store.num_videos)
    streams = [predict_batches(m, config, test_store, rows, device) for m in models]
    for parts in zip(*streams):
        batch_rows = parts[0][0]
        mean = np.mean([probs for _, probs in parts], axis=0)
        writer.write_dense(batch_rows, mean)
    return writer.close()


def run_model(
    config: TrainConfig,
    store: Store,
    out: Path,
    test_store: Store | None = None,
    folds_to_run: Sequence[int] | None = None,
    progress: Callable[[str, dict], None] | None = None,
    model_factory: FoldModelFactory | None = None,
    targets: TargetFn | None = None,
) -> dict:
    """Train the requested folds (all by default), then, when every fold is done, the
    out-of-fold set, the test predictions and the submission. Finished folds are skipped."""
    lock_run_dir(out)
    if test_store is not None and test_store.num_classes > store.num_classes:
        raise Yt8mError(f"test store has {test_store.num_classes} classes, "
                        f"training store {store.num_classes}")
    check_run_config(out, config)
    folds = store_folds(store)
    all_folds = sorted(int(f) for f in np.unique(folds))
    todo = all_folds if folds_to_run is None else sorted(folds_to_run)
    for fold in todo:
        if fold not in all_folds:
            raise Yt8mError(f"no fold {fold}: the store has folds {all_folds}")

    per_fold = []
    for fold in todo:
        def fold_progress(kind: str, info: dict, fold: int = fold) -> None:
            if progress is not None:
                progress(kind, {"fold": fold, **info})

        per_fold.append(run_fold(config, store, folds, fold, out, fold_progress,
                                 model_factory, targets))
    metrics: dict = {"name": config.name, "model": config.model.name,
                     "frame_level": config.frame_level, "folds": per_fold}
    done = [f for f in all_folds if _fold_done(out / f"fold{f}")]
    final = out / "metrics.json"
    if done == all_folds and final.is_file():
        previous = json.loads(final.read_text())
        # Out-of-fold and test outputs are complete: a rerun only reads them back.
        has_test = test_store is not None
        if "oof_gap" in previous and previous.get("test_predictions") == has_test:
            return previous
    if done == all_folds:
        oof = assemble_oof(store, folds, out, config.top_k)
        metrics["oof_gap"] = prediction_gap(store, oof)
        fold_results = [json.loads((out / f"fold{f}" / "done.json").read_text())
                        for f in all_folds]
        sizes = np.bincount(folds)
        metrics["oof_bce"] = float(
            np.average([r["best_bce"] for r in fold_results], weights=sizes)
        )
        metrics["fold_gap_mean"] = float(np.mean([r["best_gap"] for r in fold_results]))
        metrics["test_predictions"] = test_store is not None
        if test_store is not None:
            test = predict_test(config, store, test_store, out, all_folds, model_factory)
            write_submission(out / "submission.csv", test_store.ids(), np.asarray(test.indices),
                             np.asarray(test.scores, np.float32))
            if test_store.has_labels:
                metrics["test_gap"] = prediction_gap(test_store, test)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
