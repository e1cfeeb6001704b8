"""A first-level model trained over several partitions of the training videos into folds
(TrainConfig.repeats, train/repeats.py): each partition keeps the selection split and
deals the other videos anew, every training video's out-of-fold prediction is the mean
of the partitions' models that never trained on it, and the run resumes after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from tests.conftest import build_synthetic_store
from tests.test_stage_kills import _finish, _kill_when, _same_predictions
from yt8mkit.data.folds import SELECTION, assign_folds, fold_ids, partition_folds, write_folds
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.distill.config import DistillConfig
from yt8mkit.errors import Yt8mError
from yt8mkit.pipeline.layout import _complete_models
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import store_folds
from yt8mkit.zoo.config import ZooConfig
from yt8mkit.zoo.runner import run_zoo

DEFAULTS = {"batch_size": 64, "eval_batch_size": 256, "epochs": 1, "threads": 1,
            "device": "cpu", "optim": {"warmup_steps": 2}}
REPEATED = {"logistic": {"model": {"name": "logistic"}, "repeats": 2}}


@pytest.fixture(scope="module")
def split_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """300 labelled videos with a selection split, and 60 labelled test ones."""
    store, test = build_synthetic_store(
        tmp_path_factory.mktemp("repeats"), videos=300, classes=12, seed=5, rgb_dim=24,
        audio_dim=8, test_videos=60, label_test=True,
    )
    write_folds(Store(store), 5, 0, selection_fraction=0.1)
    assert test is not None
    return store, test


def test_a_partition_keeps_the_selection_split_and_deals_the_other_videos_anew() -> None:
    ids = [f"video{i:04d}" for i in range(1000)]
    folds = assign_folds(ids, 5, seed=0, selection_fraction=0.1)
    assert partition_folds(folds, ids, 0, 0) is folds
    first, second = (partition_folds(folds, ids, r, 0) for r in (1, 2))
    np.testing.assert_array_equal(first == SELECTION, folds == SELECTION)
    sizes = [int((first == f).sum()) for f in fold_ids(first)]
    assert fold_ids(first) == [0, 1, 2, 3, 4] and max(sizes) - min(sizes) <= 1
    kept = folds != SELECTION
    # A new dealing: about a fifth of the videos stay in the same fold, by chance.
    assert 0.1 < np.mean(first[kept] == folds[kept]) < 0.3
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, partition_folds(folds, ids, 1, 0))


def _configs() -> dict[str, TrainConfig]:
    return ZooConfig.model_validate({"defaults": DEFAULTS, "models": REPEATED}).train_configs()


def test_a_repeated_model_predicts_each_video_by_the_mean_of_models_that_never_saw_it(
    split_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store_path, test_path = split_store
    result = run_zoo(_configs(), str(store_path), tmp_path, str(test_path))
    assert sorted(result.done) == sorted((f"logistic/repeat{r}", f)
                                         for r in range(2) for f in range(5))
    store = Store(store_path)
    member = tmp_path / "logistic"
    partitions = [store_folds(store, r) for r in range(2)]
    assert not np.array_equal(*partitions)
    for r, folds in enumerate(partitions):
        assert f"partition: {r}" in (member / f"repeat{r}" / "config.yaml").read_text()
        for fold in range(5):
            # Each fold model predicts exactly the videos of its own partition's fold,
            # which it did not train on (train_rows: the other folds).
            held_out = np.load(member / f"repeat{r}" / f"fold{fold}" / "oof_rows.npy")
            np.testing.assert_array_equal(held_out, np.flatnonzero(folds == fold))
    # The model's sets are the partitions' mean, top K kept.
    for part in ("oof", "test"):
        merged = Predictions(member / part)
        sets = [Predictions(member / f"repeat{r}" / part) for r in range(2)]
        rows = np.arange(len(merged))
        mean = (sets[0].dense(rows) + sets[1].dense(rows)) / 2
        top = np.take_along_axis(mean, np.asarray(merged.indices, np.int64), axis=1)
        np.testing.assert_allclose(np.asarray(merged.scores), top, rtol=1e-6)
        highest = -np.sort(-mean, axis=1)[:, :merged.meta.top_k]
        np.testing.assert_allclose(np.asarray(merged.scores), highest, rtol=1e-6)
    metrics = result.metrics["logistic"]
    assert metrics["repeats"] == 2 and len(metrics["partitions"]) == 2
    assert {"oof_gap", "selection_gap", "test_gap"} <= set(metrics)
    # Readers see one member, not its partitions.
    assert _complete_models(tmp_path) == ["logistic"]


def test_a_killed_repeated_zoo_resumes_to_the_outputs_of_an_uninterrupted_one(
    split_store: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGKILL of a real `yt8m zoo` in the second partition, then the same command again."""
    store_path, test_path = split_store
    zoo_file = tmp_path / "zoo.yaml"
    zoo_file.write_text(yaml.safe_dump({"name": "repeated", "defaults": DEFAULTS,
                                        "models": REPEATED}))

    def args(run: str) -> list[str]:
        return ["zoo", str(zoo_file), "--store", str(store_path), "--test-store",
                str(test_path), "--out", str(tmp_path / run)]

    _finish(*args("whole"))
    _kill_when(tmp_path / "killed", "logistic/repeat1/fold*/done.json", 2, *args("killed"))
    assert not (tmp_path / "killed" / "logistic" / "oof").exists()
    _finish(*args("killed"))
    for part in ("oof", "test"):
        _same_predictions(tmp_path / "killed" / "logistic" / part,
                          tmp_path / "whole" / "logistic" / part)
    resumed = json.loads((tmp_path / "killed" / "logistic" / "metrics.json").read_text())
    whole = json.loads((tmp_path / "whole" / "logistic" / "metrics.json").read_text())
    assert resumed["test_gap"] == whole["test_gap"]


def test_repeats_are_a_first_level_setting() -> None:
    with pytest.raises(ValidationError, match="not both"):
        TrainConfig.model_validate({"model": {"name": "logistic"}, "repeats": 2,
                                    "partition": 1})
    with pytest.raises(ValidationError, match=r"students\.0\.train\.repeats"):
        DistillConfig.model_validate({"students": [{"model": "student_mlp",
                                                    "train": {"repeats": 2}}]})


def test_yt8m_train_runs_every_partition_and_says_so(
    split_store: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from yt8mkit.cli.main import app
    from yt8mkit.train.run import run_model

    config = tmp_path / "logistic.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "logistic"}, **DEFAULTS}))
    store_path, test_path = split_store
    result = CliRunner().invoke(app, ["train", str(config), "--store", str(store_path),
                                      "--test-store", str(test_path), "--out",
                                      str(tmp_path / "run"), "--set", "repeats=2"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["repeats"] == 2 and printed["folds_trained"] == [0, 1, 2, 3, 4]
    assert 0 < printed["test_gap"] < 1
    assert all((tmp_path / "run" / f"repeat{r}" / "fold4" / "done.json").is_file()
               for r in range(2))
    # The single-partition entry point refuses a repeated model rather than train one part.
    repeated = TrainConfig.model_validate({"model": {"name": "logistic"}, "repeats": 2})
    with pytest.raises(Yt8mError, match="run_partitions"):
        run_model(repeated, Store(store_path), tmp_path / "other")
