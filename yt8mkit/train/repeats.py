"""A model trained over several partitions of the training videos into folds
(``TrainConfig.repeats``): each partition's run in ``repeat{r}/`` of the model's run
directory, and the model's own out-of-fold set, test predictions and metrics the mean
over the partitions.

Why: a training video's out-of-fold prediction comes from the one fold model that did
not train on it, while the selection split and the test videos get the mean of all fold
models, a better predictor (on dev/, resnet_like: one fold model 0.70 GAP@20, the mean of
five 0.72). The ensemble learns on the first and is applied to the second, and its
out-of-fold scores are distillation's soft labels. With R partitions every training
video is predicted by R models that never saw it, so the teacher is stronger exactly
where the students learn from it, and no less leak-free (bench/results/repeats.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from yt8mkit.data.folds import selection_rows
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.rundir import finish_test_set, lock_run_dir, prediction_gap, write_json
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import check_run_config, run_model, store_folds

# Videos averaged at a time: (block, classes) float32 arrays, one a partition.
_BLOCK = 4096


def repeat_config(config: TrainConfig, partition: int) -> TrainConfig:
    return config.model_copy(update={"repeats": 1, "partition": partition})


def repeat_units(config: TrainConfig, out: Path) -> list[tuple[TrainConfig, Path]]:
    """(config, run directory) of every partition the model trains over; with one, the
    model's own directory, laid out as it always was."""
    if config.repeats == 1:
        return [(config, out)]
    return [(repeat_config(config, r), out / f"repeat{r}") for r in range(config.repeats)]


def run_partitions(
    config: TrainConfig, store: Store, out: Path, test_store: Store | None = None,
    folds_to_run: Sequence[int] | None = None,
    progress: Callable[[str, dict], None] | None = None,
) -> dict:
    """A first-level model's run: ``run_model`` for one partition, ``run_repeats`` for
    several."""
    if config.repeats == 1:
        return run_model(config, store, out, test_store, folds_to_run, progress)
    return run_repeats(config, store, out, test_store, folds_to_run, progress)


def run_repeats(
    config: TrainConfig, store: Store, out: Path, test_store: Store | None = None,
    folds_to_run: Sequence[int] | None = None,
    progress: Callable[[str, dict], None] | None = None,
) -> dict:
    """Every partition's run (finished folds skipped), then, once all are complete, the
    mean prediction sets and the model's metrics."""
    lock_run_dir(out)
    check_run_config(out, config)
    parts = [run_model(c, store, d, test_store, folds_to_run, progress)
             for c, d in repeat_units(config, out)]
    metrics: dict = {"name": config.name, "model": config.model.name,
                     "frame_level": config.frame_level, "repeats": config.repeats,
                     "partitions": parts}
    final = out / "metrics.json"
    complete = all("oof_gap" in p and p.get("test_predictions") == (test_store is not None)
                   for p in parts)
    if not complete:
        write_json(final, metrics)
        return metrics
    if final.is_file():
        # The mean sets are complete: a rerun only reads them back.
        previous = json.loads(final.read_text())
        if Predictions.exists(out / "oof") and "oof_gap" in previous and \
                previous.get("test_predictions") == (test_store is not None):
            return previous
    folds = store_folds(store)
    oof = mean_of_sets([Predictions(d / "oof") for _, d in repeat_units(config, out)],
                       out / "oof", config.top_k)
    metrics.update({
        "oof_gap": prediction_gap(oof, store, np.flatnonzero(folds >= 0)),
        "selected_on": config.select_on,
        "oof_bce": float(np.mean([p["oof_bce"] for p in parts])),
        "fold_gap_mean": float(np.mean([p["fold_gap_mean"] for p in parts])),
        "test_predictions": test_store is not None,
    })
    if len(selection_rows(folds)):
        metrics["selection_gap"] = prediction_gap(oof, store, selection_rows(folds))
    if test_store is not None:
        test = mean_of_sets([Predictions(d / "test") for _, d in repeat_units(config, out)],
                            out / "test", config.top_k)
        metrics.update(finish_test_set(test, test_store, out))
    write_json(final, metrics)
    return metrics


def mean_of_sets(sets: Sequence[Predictions], out: Path, top_k: int) -> Predictions:
    """The mean probability of aligned prediction sets, top ``top_k`` kept, written to
    ``out`` (atomically). A class outside a set's top K counts as 0 there: those are
    scores too small to reach any set's top 20, which GAP@20 and the stack read."""
    first = sets[0]
    for other in sets[1:]:
        if (len(other), other.meta.num_classes) != (len(first), first.meta.num_classes):
            raise ValueError(f"{other.path}: {len(other)} videos x {other.meta.num_classes} "
                             f"classes, {first.path} {len(first)} x {first.meta.num_classes}")
    writer = PredictionsWriter(out, len(first), first.meta.num_classes, top_k)
    for start in range(0, len(first), _BLOCK):
        rows = np.arange(start, min(len(first), start + _BLOCK))
        total = first.dense(rows)
        for other in sets[1:]:
            total += other.dense(rows)
        writer.write_dense(rows, total / len(sets))
    return writer.close()
