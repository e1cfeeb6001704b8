"""The final layer trained on out-of-fold student features (distill/oof_final.py): each
training video's features come from the students that did not train on it, the layer is
deterministic, its epoch is the selection split's best, and the fold models it writes are
what the export reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from yt8mkit.data.folds import SELECTION, write_folds
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.distill.config import DistillConfig
from yt8mkit.distill.run import final_model_factory, run_distill
from yt8mkit.export.final import ExportConfig, export_final_model
from yt8mkit.export.predictor import OnnxPredictor
from yt8mkit.train.checkpoints import load_checkpoint
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import run_model

FAST = {"epochs": 2, "batch_size": 64, "threads": 1, "device": "cpu",
        "optim": {"lr": 0.003, "warmup_steps": 5}}


@pytest.fixture
def distilled(small_video_store: tuple[Path, Path], tmp_path: Path
              ) -> tuple[Store, Store, Path, DistillConfig]:
    shutil.copytree(small_video_store[0], tmp_path / "store")
    store, test = Store(tmp_path / "store"), Store(small_video_store[1])
    write_folds(store, 5, 0, selection_fraction=0.2)
    teacher = TrainConfig.model_validate({**FAST, "name": "teacher",
                                          "model": {"name": "logistic"}})
    run_model(teacher, store, tmp_path / "teacher")
    config = DistillConfig.model_validate({
        "labels": "soft", "students": [{"depth": 1, "width": 16}, {"depth": 1, "width": 8}],
        "train": FAST, "final_train": {**FAST, "epochs": 3},
    })
    run_distill(store, Predictions(tmp_path / "teacher" / "oof"), tmp_path / "d", config, test)
    return store, test, tmp_path / "d", config


def test_each_video_gets_the_features_of_the_students_that_did_not_train_on_it(
    distilled: tuple[Store, Store, Path, DistillConfig]
) -> None:
    store, _, out, config = distilled
    folds = store.folds()
    features = np.load(out / "soft" / "final" / "features" / "oof.npy")
    build = final_model_factory(store, [out / "soft" / f"student{i}" for i in range(2)],
                                config.student_models(), False)
    for fold in range(5):
        rows = np.flatnonzero(folds == fold)
        model = build(fold).eval()
        with torch.no_grad():
            want = model.penultimate({m: torch.from_numpy(np.asarray(
                store.video_features(m)[rows], np.float32)) for m in store.modalities})
        np.testing.assert_allclose(features[rows], want.numpy().astype(np.float16), rtol=1e-3)
    assert features.shape[1] == 16 + 8
    # The selection split is never a training row: its features hold one copy per fold.
    selection = np.load(out / "soft" / "final" / "features" / "selection.npy")
    assert selection.shape[:2] == (5, int((folds == SELECTION).sum()))


def test_the_layer_is_deterministic_and_its_epoch_is_the_selection_splits_best(
    distilled: tuple[Store, Store, Path, DistillConfig], tmp_path: Path
) -> None:
    store, test, out, config = distilled
    metrics = json.loads((out / "soft" / "final" / "metrics.json").read_text())
    assert metrics["selected_on"] == "selection"
    head = json.loads((out / "soft" / "final" / "head.json").read_text())
    assert metrics["best_epoch"] == head["epoch"]
    assert abs(metrics["selection_gap"] - head["gap"]) < 1e-6
    # Again from the same students (features and layer retrained): the same layer.
    again = tmp_path / "again"
    shutil.copytree(out, again)
    shutil.rmtree(again / "soft" / "final")
    run_distill(store, Predictions(tmp_path / "teacher" / "oof"), again, config, test)
    first = load_checkpoint(out / "soft" / "final" / "head.pt")["model"]
    second = load_checkpoint(again / "soft" / "final" / "head.pt")["model"]
    for key in first:
        assert torch.equal(first[key], second[key])


def test_the_export_of_every_fold_gives_the_runs_test_predictions(
    distilled: tuple[Store, Store, Path, DistillConfig], tmp_path: Path
) -> None:
    store, test, out, config = distilled
    report = export_final_model(store, out, config, tmp_path / "final.onnx",
                                ExportConfig(fold="all"))
    assert report["check_gap_onnx"] > 0
    predictor = OnnxPredictor(tmp_path / "final.onnx")
    rows = np.arange(min(64, test.num_videos))
    probs = predictor.predict({m: np.asarray(test.video_features(m)[rows], np.float32)
                               for m in test.modalities})
    run_test = Predictions(out / "soft" / "final" / "test")
    top = np.asarray(run_test.indices[rows][:, 0], np.int64)
    np.testing.assert_allclose(probs[np.arange(len(rows)), top],
                               np.asarray(run_test.scores[rows][:, 0]), atol=1e-4)
