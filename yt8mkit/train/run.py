"""One model over the folds: out-of-fold predictions for every training video, test
predictions averaged over the fold models, and the run's metrics.

Run directory::

    config.yaml            the resolved TrainConfig (a different one is refused)
    fold{k}/               best.pt, last.pt, metrics.json, oof/ (held-out part), done.json
    oof/                   top-K predictions of each training video by the model not seeing it;
                           videos of the selection split (no fold trains on them): the fold
                           models' mean probability, as for test videos
    test/                  top-K test predictions, the fold models' mean probability
    submission.csv         Kaggle submission of test/
    metrics.json           per-fold and out-of-fold GAP@20 and BCE, test GAP when labelled
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from yt8mkit.data.folds import (
    fold_ids,
    folds_info,
    partition_folds,
    selection_rows,
    train_rows,
    write_folds,
)
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.soft_targets import SoftLabels
from yt8mkit.data.store import Store, StoreError
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import (
    assemble_folds,
    finish_test_set,
    guard_config,
    is_done,
    lock_run_dir,
    mark_done,
    prediction_gap,
    read_done,
    write_json,
)
from yt8mkit.train.batches import TargetFn
from yt8mkit.train.config import TrainConfig
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


def store_folds(store: Store, partition: int = 0) -> np.ndarray:
    """The store's folds (written with the defaults when it has none), or another
    partition of its videos into folds (``TrainConfig.partition``)."""
    try:
        folds = store.folds()
    except StoreError:
        folds = write_folds(store)
    if partition == 0:
        return folds
    info = folds_info(store)
    return partition_folds(folds, store.ids(), partition, info["seed"] if info else 0)


# What a fold's done.json vouches for: its checkpoint and its held-out predictions.
FOLD_OUTPUTS = ("best.pt", "oof", "oof_rows.npy")


def _resolved(config: dict) -> dict:
    # Compared as validated configs, not as text: a run written before a new setting
    # existed holds that setting's default, and still resumes.
    return TrainConfig.model_validate(config).resolved()


def check_run_config(out: Path, config: TrainConfig) -> None:
    """Record the run's resolved config, or refuse a run directory made with another."""
    guard_config(out, "config.yaml", config.resolved(), normalise=_resolved)


def _fold_done(fold_dir: Path) -> bool:
    return is_done(fold_dir, FOLD_OUTPUTS)


def run_fold(
    config: TrainConfig, store: Store, folds: np.ndarray, fold: int, out: Path,
    progress: Progress | None = None, model_factory: FoldModelFactory | None = None,
    targets: TargetFn | None = None,
) -> dict:
    fold_dir = out / f"fold{fold}"
    done_before = read_done(fold_dir, FOLD_OUTPUTS)
    if done_before is not None:
        return done_before
    valid_rows = np.flatnonzero(folds == fold)
    factory = _for_fold(model_factory, fold)
    if targets is None and config.soft_labels is not None:
        targets = soft_targets(config.soft_labels, store)
    result = train_fold(config, store, train_rows(folds, fold),
                        _choosing_rows(config, store, folds, fold), fold_dir, progress, factory,
                        targets)
    device = resolve_device(config)
    model = load_best(config, store, fold_dir, device, factory)
    writer = PredictionsWriter(fold_dir / "oof", len(valid_rows), store.num_classes, config.top_k)
    done = 0  # predict_batches keeps the order of valid_rows
    for rows, probs in predict_batches(model, config, store, valid_rows, device):
        writer.write_dense(np.arange(done, done + len(rows)), probs)
        done += len(rows)
    writer.close()
    np.save(fold_dir / "oof_rows.npy", valid_rows)
    return mark_done(fold_dir, {"fold": fold, **result.__dict__}, FOLD_OUTPUTS)


def soft_targets(path: str | Path, store: Store) -> TargetFn:
    """The training targets of a soft-label set, checked against the store's shape."""
    soft = SoftLabels.load(path)
    if (soft.num_videos, soft.num_classes) != (store.num_videos, store.num_classes):
        raise Yt8mError(
            f"{path}: soft labels for {soft.num_videos} videos x {soft.num_classes} classes, "
            f"the store {store.path} has {store.num_videos} x {store.num_classes}"
        )
    return soft.dense


def _choosing_rows(config: TrainConfig, store: Store, folds: np.ndarray, fold: int
                   ) -> np.ndarray:
    """The videos whose GAP@20 chooses the fold's epoch (see TrainConfig.select_on); only
    the labelled ones count (Store.scored_rows)."""
    if config.select_on == "fold":
        return store.scored_rows(np.flatnonzero(folds == fold))
    rows = store.scored_rows(selection_rows(folds))
    if not len(rows):
        raise Yt8mError(
            f"{config.name}: select_on is 'selection', but the store's folds have no "
            f"selection split (write folds with a selection_fraction above 0)"
        )
    return rows


def _for_fold(factory: FoldModelFactory | None, fold: int) -> Callable[[], nn.Module] | None:
    return None if factory is None else (lambda: factory(fold))


def assemble_oof(
    config: TrainConfig, store: Store, folds: np.ndarray, out: Path,
    model_factory: FoldModelFactory | None = None,
) -> Predictions:
    """The out-of-fold prediction set from the folds' held-out parts; the selection split's
    videos, which no fold held out, get the fold models' mean probability."""
    writer = PredictionsWriter(out / "oof", store.num_videos, store.num_classes, config.top_k)
    assemble_folds(writer, [out / f"fold{fold}" for fold in fold_ids(folds)])
    selected = selection_rows(folds)
    if len(selected):
        for rows, mean in _mean_of_folds(config, store, store, selected, out, fold_ids(folds),
                                         model_factory):
            writer.write_dense(rows, mean)
    return writer.close()


def _mean_of_folds(
    config: TrainConfig, store: Store, data: Store, rows: np.ndarray, out: Path,
    folds: Sequence[int], model_factory: FoldModelFactory | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, mean probability of the fold models) of ``data``'s ``rows``, batch by batch."""
    device = resolve_device(config)
    models = [load_best(config, store, out / f"fold{f}", device, _for_fold(model_factory, f))
              for f in folds]
    streams = [predict_batches(m, config, data, rows, device) for m in models]
    for parts in zip(*streams):
        yield parts[0][0], np.mean([probs for _, probs in parts], axis=0)


def predict_test(
    config: TrainConfig, store: Store, test_store: Store, out: Path, folds: Sequence[int],
    model_factory: FoldModelFactory | None = None,
) -> Predictions:
    """Mean probability of the fold models, top-K; one batch of test videos at a time."""
    writer = PredictionsWriter(out / "test", test_store.num_videos, store.num_classes,
                               config.top_k)
    for batch_rows, mean in _mean_of_folds(config, store, test_store,
                                           np.arange(test_store.num_videos), out, folds,
                                           model_factory):
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
    if config.repeats > 1:
        # One partition's run would pass for the model's: train/repeats.py runs them all.
        raise Yt8mError(f"{config.name}: repeats {config.repeats}: run it with "
                        f"train.repeats.run_partitions")
    check_run_config(out, config)
    folds = store_folds(store, config.partition)
    all_folds = fold_ids(folds)
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
        metrics.update(_complete(config, store, folds, out, test_store, model_factory))
    write_json(out / "metrics.json", metrics)
    return metrics


def _complete(config: TrainConfig, store: Store, folds: np.ndarray, out: Path,
              test_store: Store | None, model_factory: FoldModelFactory | None) -> dict:
    """Once every fold is done: the out-of-fold set and its scores, the test predictions
    and the submission."""
    all_folds = fold_ids(folds)
    oof = assemble_oof(config, store, folds, out, model_factory)
    metrics: dict = {"oof_gap": prediction_gap(oof, store, np.flatnonzero(folds >= 0)),
                     "selected_on": config.select_on}
    if len(selection_rows(folds)):
        # Leak-free for every level: no model this run learns from trained on them.
        metrics["selection_gap"] = prediction_gap(oof, store, selection_rows(folds))
    fold_results = [read_done(out / f"fold{f}", FOLD_OUTPUTS) or {} for f in all_folds]
    sizes = [int((folds == f).sum()) for f in all_folds]
    metrics["oof_bce"] = float(np.average([r["best_bce"] for r in fold_results], weights=sizes))
    metrics["fold_gap_mean"] = float(np.mean([r["best_gap"] for r in fold_results]))
    metrics["test_predictions"] = test_store is not None
    if test_store is not None:
        test = predict_test(config, store, test_store, out, all_folds, model_factory)
        metrics.update(finish_test_set(test, test_store, out))
    return metrics
