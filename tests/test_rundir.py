"""The run-directory bookkeeping every stage shares (yt8mkit/rundir.py): the done marker,
the config guard, out-of-fold assembly and the one rule for which videos count in a GAP."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from yt8mkit.data.folds import SELECTION
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.ensemble.stack import oof_gap
from yt8mkit.errors import Yt8mError
from yt8mkit.rundir import (
    RunConfigError,
    assemble_folds,
    guard_config,
    mark_done,
    prediction_gap,
    read_done,
)
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import check_run_config


def _predictions(path: Path, store: Store, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    writer = PredictionsWriter(path, store.num_videos, store.num_classes, 20)
    # Noisy truth: the GAP depends on which videos are scored.
    probs = 0.5 * store.labels_dense(np.arange(store.num_videos)) + rng.random(
        (store.num_videos, store.num_classes))
    writer.write_dense(np.arange(store.num_videos), (probs / 1.5).astype(np.float32))
    return writer.close()


def test_done_marker_vouches_only_for_outputs_that_are_there(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"x")
    with pytest.raises(Yt8mError, match=r"missing.*oof_rows\.npy"):
        mark_done(tmp_path, {"fold": 0}, ["best.pt", "oof_rows.npy"])
    assert not (tmp_path / "done.json").exists()
    np.save(tmp_path / "oof_rows.npy", np.arange(3))
    mark_done(tmp_path, {"fold": 0}, ["best.pt", "oof_rows.npy"])
    assert read_done(tmp_path, ["best.pt", "oof_rows.npy"]) == {"fold": 0}
    (tmp_path / "best.pt").unlink()  # an output lost after the marker: redo the step
    assert read_done(tmp_path, ["best.pt", "oof_rows.npy"]) is None


def test_config_guard_records_then_refuses_another_naming_the_key(tmp_path: Path) -> None:
    guard_config(tmp_path, "config.yaml", {"a": 1, "b": {"c": 2}})
    guard_config(tmp_path, "config.yaml", {"a": 1, "b": {"c": 2}})  # the same: resumes
    with pytest.raises(RunConfigError, match=r"differs at b\.c"):
        guard_config(tmp_path, "config.yaml", {"a": 1, "b": {"c": 3}})
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"a": 1, "b": {"c": 2}}


def test_train_run_records_the_resolved_config_and_resumes_only_under_it(
        tmp_path: Path) -> None:
    config = TrainConfig.model_validate({"model": {"name": "logistic"}})
    check_run_config(tmp_path, config)
    recorded = yaml.safe_load((tmp_path / "config.yaml").read_text())
    # Every default written out, the model's and the loss's parameters too.
    assert recorded["model"]["params"]["input_norm"] == config.model.resolved_params(
        ).model_dump()["input_norm"]
    assert recorded["optim"]["lr"] == 1e-3
    # A run recorded with only the keys a user wrote (before configs were recorded
    # resolved) holds the same settings: it resumes.
    (tmp_path / "config.yaml").write_text("model: {name: logistic}\nname: model\n")
    check_run_config(tmp_path, config)
    other = TrainConfig.model_validate({"model": {"name": "logistic"}, "optim": {"lr": 0.01}})
    with pytest.raises(RunConfigError, match=r"optim\.lr"):
        check_run_config(tmp_path, other)
    # A changed default is a change: a run recorded when the default learning rate was
    # 0.005 does not resume under today's default, though neither config names it.
    then = config.resolved()
    then["optim"]["lr"] = 0.005
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(then))
    with pytest.raises(RunConfigError, match=r"optim\.lr"):
        check_run_config(tmp_path, config)


def test_assembly_puts_each_fold_part_at_its_rows(tmp_path: Path) -> None:
    rows = {0: np.array([3, 0]), 1: np.array([1, 2, 4])}
    for fold, at in rows.items():
        part = PredictionsWriter(tmp_path / f"fold{fold}" / "oof", len(at), 6, 3)
        part.write_sparse(np.arange(len(at)), np.tile(at[:, None], 3), np.ones((len(at), 3)))
        part.close()
        np.save(tmp_path / f"fold{fold}" / "oof_rows.npy", at)
    writer = PredictionsWriter(tmp_path / "oof", 5, 6, 3)
    assemble_folds(writer, [tmp_path / "fold0", tmp_path / "fold1"])
    whole = writer.close()
    assert np.asarray(whole.indices)[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_unlabelled_videos_do_not_count_in_any_level_gap(
        small_video_store: tuple[Path, Path], tmp_path: Path) -> None:
    source = Store(small_video_store[0])
    predictions = _predictions(tmp_path / "p", source)
    copy = tmp_path / "store"
    shutil.copytree(source.path, copy)
    # The first 100 videos become records without a labels key.
    labelled = np.fromfile(copy / "labelled.bin", np.bool_)
    labelled[:100] = False
    labelled.tofile(copy / "labelled.bin")
    mixed = Store(copy)
    kept = np.arange(100, source.num_videos)
    assert mixed.scored_rows().tolist() == kept.tolist()
    assert prediction_gap(predictions, mixed) == prediction_gap(predictions, source, kept)
    assert prediction_gap(predictions, mixed) != prediction_gap(predictions, source)
    # The stack's out-of-fold GAP and a first-level model's (train/run.py scores the
    # folds' videos) are the one function: the same videos, the same figure.
    folds = np.asarray(mixed.folds())
    assert oof_gap(predictions, mixed) == prediction_gap(predictions, mixed,
                                                         np.flatnonzero(folds != SELECTION))
