"""The leak-free second level: a selection split that no first-level model trains on,
predicted by the mean of the fold models, and the only data on which second-level epochs
are chosen and second-level scores reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from yt8mkit.data.folds import (
    SELECTION,
    assign_folds,
    fold_ids,
    selection_rows,
    train_rows,
    write_folds,
)
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.distill.config import DistillConfig, StudentConfig
from yt8mkit.distill.run import run_distill
from yt8mkit.distill.soft_labels import build_soft_labels
from yt8mkit.ensemble import run_stack
from yt8mkit.ensemble.config import StackConfig
from yt8mkit.errors import Yt8mError
from yt8mkit.metrics import gap_at_k
from yt8mkit.models.registry import ModelConfigError
from yt8mkit.train import trainer
from yt8mkit.train.config import LossConfig, TrainConfig
from yt8mkit.train.losses import build_loss
from yt8mkit.train.run import run_fold, run_model


def _config(**overrides: object) -> TrainConfig:
    base: dict = {
        "name": "tiny",
        "model": {"name": "resnet_like", "params": {"inner_size": 32, "dropout": 0.2}},
        "batch_size": 64, "eval_batch_size": 128, "epochs": 2, "patience": 5,
        "optim": {"lr": 0.003, "warmup_steps": 5}, "threads": 1, "device": "cpu",
    }
    base.update(overrides)
    return TrainConfig.model_validate(base)


@pytest.fixture
def split_store(small_video_store: tuple[Path, Path], tmp_path: Path) -> tuple[Store, Store]:
    """A copy of the small store whose folds set 20% of the videos aside."""
    shutil.copytree(small_video_store[0], tmp_path / "store")
    store = Store(tmp_path / "store")
    write_folds(store, 5, 0, selection_fraction=0.2)
    return store, Store(small_video_store[1])


# ---------------------------------------------------------------- the split itself


def test_selection_split_is_its_share_and_leaves_balanced_folds() -> None:
    ids = [f"v{i:05d}" for i in range(1003)]
    folds = assign_folds(ids, 5, seed=3, selection_fraction=0.1)
    assert (folds == SELECTION).sum() == round(1003 * 0.1)
    sizes = [int((folds == f).sum()) for f in fold_ids(folds)]
    assert fold_ids(folds) == [0, 1, 2, 3, 4] and max(sizes) - min(sizes) <= 1
    # By id, not by order: shuffled ids keep their folds.
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled = assign_folds([ids[i] for i in order], 5, seed=3, selection_fraction=0.1)
    assert np.array_equal(shuffled, folds[order])
    # Without a split, the folds are what they always were.
    plain = assign_folds(ids, 5, seed=3)
    assert SELECTION not in plain and len(np.unique(plain)) == 5
    for fold in range(5):
        assert not np.isin(train_rows(folds, fold), selection_rows(folds)).any()
    with pytest.raises(ValueError):
        assign_folds(ids, 5, selection_fraction=1.0)


def test_first_level_never_trains_on_the_selection_split(
    split_store: tuple[Store, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, test_store = split_store
    folds, selected = store.folds(), selection_rows(store.folds())
    trained_on: list[np.ndarray] = []
    real_train_fold = trainer.train_fold

    def spy(config, store, train, valid, *args, **kwargs):  # type: ignore[no-untyped-def]
        trained_on.append(np.asarray(train))
        return real_train_fold(config, store, train, valid, *args, **kwargs)

    monkeypatch.setattr("yt8mkit.train.run.train_fold", spy)
    metrics = run_model(_config(), store, tmp_path / "run", test_store)
    assert len(trained_on) == 5
    for rows in trained_on:
        assert not np.isin(rows, selected).any()
    # The selection split is predicted by the mean of the 5 fold models, like test videos.
    oof = Predictions(tmp_path / "run" / "oof")
    labels = store.labels_dense(selected)
    assert metrics["selection_gap"] == pytest.approx(
        gap_at_k(oof.dense(selected), labels), abs=2e-3)
    assert 0.0 < metrics["selection_gap"] <= 1.0
    cv = np.flatnonzero(folds >= 0)
    assert metrics["oof_gap"] == pytest.approx(
        gap_at_k(oof.dense(cv), store.labels_dense(cv)), abs=2e-3)


def test_chosen_epoch_follows_the_selection_split_not_the_leaky_fold(
    split_store: tuple[Store, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scorer under which the held-out fold (what a leaky choice sees) prefers the last
    epoch and the selection split the first: the chosen epoch must be the first, and the
    choosing rows must hold no video that any first-level fold model trained on."""
    store, _ = split_store
    folds = store.folds()
    selected = set(selection_rows(folds).tolist())
    teachers_saw = set(np.flatnonzero(folds >= 0).tolist())
    calls: list[np.ndarray] = []

    def scored(model, store, rows, config, device):  # type: ignore[no-untyped-def]
        calls.append(np.asarray(rows))
        epoch = len(calls) - 1
        on_selection = set(np.asarray(rows).tolist()) <= selected
        return (0.9 - 0.1 * epoch if on_selection else 0.5 + 0.1 * epoch), 0.01

    monkeypatch.setattr(trainer, "evaluate", scored)
    leaky = trainer.train_fold(_config(epochs=3), store, train_rows(folds, 0),
                               np.flatnonzero(folds == 0), tmp_path / "leaky")
    assert leaky.best_epoch == 2  # what choosing on the fold would have done
    calls.clear()
    config = _config(epochs=3, select_on="selection")
    done = run_fold(config, store, folds, 0, tmp_path / "clean")
    assert done["best_epoch"] == 0
    assert calls and all(set(rows.tolist()) == selected for rows in calls)
    assert all(not (set(rows.tolist()) & teachers_saw) for rows in calls)


def test_select_on_selection_without_a_split_is_a_clear_error(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = Store(small_video_store[0])
    with pytest.raises(Yt8mError, match="no selection split"):
        run_model(_config(select_on="selection"), store, tmp_path / "run", folds_to_run=[0])


# ---------------------------------------------------------------- the stack


def test_stack_scores_the_selection_split_with_models_that_never_saw_it(
    split_store: tuple[Store, Store], tmp_path: Path
) -> None:
    store, _ = split_store
    folds = store.folds()
    selected = selection_rows(folds)
    truth = store.labels_dense(np.arange(store.num_videos))
    rng = np.random.default_rng(1)
    dirs = {}
    for name in ("a", "b"):
        logits = 2.0 * (2 * truth - 1) - 2.0 + rng.normal(0, 2.0, truth.shape)
        writer = PredictionsWriter(tmp_path / name, store.num_videos, store.num_classes, 15)
        writer.write_dense(np.arange(store.num_videos), 1 / (1 + np.exp(-logits)))
        writer.close()
        dirs[name] = tmp_path / name
    config = StackConfig(top_n=10, top_k=15, num_leaves=7, n_estimators=40,
                         early_stopping_rounds=10, min_data_in_leaf=10, threads=1,
                         chunk_videos=200)
    result = run_stack(dirs, store, tmp_path / "stack", config)
    assert [f.fold for f in result.folds] == fold_ids(folds)
    for fold in result.folds:
        assert not np.isin(fold.seen_videos, selected).any()
    scores = np.asarray(result.oof.scores[selected], np.float32)
    assert (scores[:, 0] > 0).all()  # every selection video was scored
    metrics = json.loads((tmp_path / "stack" / "metrics.json").read_text())
    assert metrics["selection_gap"] == pytest.approx(
        gap_at_k(result.oof.dense(selected), truth[selected]), abs=2e-3)
    assert set(metrics["inputs_selection_gap"]) == {"a", "b"}


# ---------------------------------------------------------------- soft targets


def test_bce_on_soft_targets_is_least_where_the_probability_is_the_target() -> None:
    targets = torch.tensor([[0.0, 0.3, 0.9, 1.0]])
    loss = build_loss(LossConfig())
    logits = torch.logit(targets.clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
    loss(logits, targets).backward()
    assert logits.grad is not None
    assert torch.allclose(logits.grad, torch.zeros_like(logits.grad), atol=1e-4)
    worse = loss(torch.logit(torch.tensor([[0.01, 0.6, 0.6, 0.99]])), targets)
    assert worse > loss(logits.detach(), targets)


def test_temperature_sharpens_and_softens_the_ensemble_scores(
    split_store: tuple[Store, Store], tmp_path: Path
) -> None:
    store, _ = split_store
    writer = PredictionsWriter(tmp_path / "oof", store.num_videos, store.num_classes, 3)
    probs = np.full((store.num_videos, store.num_classes), 0.01, np.float32)
    probs[:, :3] = [0.8, 0.5, 0.2]
    writer.write_dense(np.arange(store.num_videos), probs)
    oof = writer.close()
    plain = build_soft_labels(oof, store).dense(np.arange(3))[:, :3]
    sharp = build_soft_labels(oof, store, temperature=0.5).dense(np.arange(3))[:, :3]
    soft = build_soft_labels(oof, store, temperature=2.0).dense(np.arange(3))[:, :3]
    assert np.allclose(plain[0], [0.8, 0.5, 0.2], atol=1e-6)
    assert np.allclose(sharp[0], [0.8**2 / (0.8**2 + 0.2**2), 0.5, 0.2**2 / (0.8**2 + 0.2**2)],
                       atol=1e-5)
    assert soft[0, 0] < 0.8 and soft[0, 2] > 0.2 and soft[0, 1] == pytest.approx(0.5)


# ---------------------------------------------------------------- students of any model


def test_students_are_any_registered_video_model_checked_when_read() -> None:
    config = DistillConfig.model_validate({"students": [
        {"depth": 1, "width": 8},
        {"model": "resnet_like", "params": {"inner_size": 16}, "train": {"epochs": 1}},
    ]})
    assert [s.model for s in config.students] == ["student_mlp", "resnet_like"]
    assert config.student_models()[0] == ("student_mlp", {"depth": 1, "width": 8})
    with pytest.raises(ValueError, match="inner_sise"):
        DistillConfig.model_validate({"students": [
            {"model": "resnet_like", "params": {"inner_sise": 16}}]})
    with pytest.raises((ValueError, ModelConfigError), match="frame-level"):
        StudentConfig.model_validate({"model": "lstm_bi_attention"})


def test_distillation_chooses_and_scores_on_the_selection_split(
    split_store: tuple[Store, Store], tmp_path: Path
) -> None:
    store, test_store = split_store
    run_model(_config(name="teacher"), store, tmp_path / "teacher")
    config = DistillConfig.model_validate({
        "labels": "soft", "blend": 0.5,
        "students": [{"depth": 1, "width": 16},
                     {"model": "resnet_like", "params": {"inner_size": 16}}],
        "train": {"epochs": 2, "batch_size": 64, "threads": 1, "device": "cpu"},
        "final_train": {"epochs": 2, "batch_size": 64, "threads": 1, "device": "cpu"},
    })
    metrics = run_distill(store, Predictions(tmp_path / "teacher" / "oof"),
                          tmp_path / "distill", config, test_store)
    assert set(metrics) == {"soft_student0", "soft_student1", "soft_final"}
    for values in metrics.values():
        assert values["selected_on"] == "selection"
        assert 0.0 < values["selection_gap"] <= 1.0
    assert "resnet_like" in (tmp_path / "distill" / "soft" / "student1" / "config.yaml"
                             ).read_text()
    # Soft labels built with other options are not silently reused.
    other = config.model_copy(update={"temperature": 0.5})
    with pytest.raises(Yt8mError, match="temperature"):
        run_distill(store, Predictions(tmp_path / "teacher" / "oof"), tmp_path / "distill",
                    other, test_store)


def test_a_typo_in_distill_or_zoo_settings_fails_when_the_config_is_read(tmp_path: Path) -> None:
    from yt8mkit.config_files import ConfigError
    from yt8mkit.pipeline.config import PipelineConfig

    base = {"data": {"synth": {"videos": 50, "classes": 5}},
            "zoo": {"models": {"logistic": {"model": {"name": "logistic"}}}}}
    PipelineConfig.from_dict(base, tmp_path)
    with pytest.raises(ConfigError, match=r"(?s)distill\.train.*lrr"):
        PipelineConfig.from_dict({**base, "distill": {"train": {"optim": {"lrr": 1}}}},
                                 tmp_path)
    with pytest.raises(ConfigError, match=r"(?s)zoo\.models\.logistic.*epochz"):
        PipelineConfig.from_dict({**base, "zoo": {"models": {"logistic": {
            "model": {"name": "logistic"}, "epochz": 3}}}}, tmp_path)


def test_a_student_fixed_to_hard_labels_trains_on_them_among_soft_ones(
    split_store: tuple[Store, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yt8mkit.distill.run as distill_run

    store, _ = split_store
    run_model(_config(name="teacher", epochs=1), store, tmp_path / "teacher")
    seen: dict[str, bool] = {}
    real = distill_run.run_model

    def spy(config, store, out, *args, targets=None, **kwargs):  # type: ignore[no-untyped-def]
        seen[config.name] = targets is not None
        return real(config, store, out, *args, targets=targets, **kwargs)

    real_final = distill_run.run_oof_final

    def final_spy(config, store, folds, build, targets, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen[config.name] = targets is not None
        return real_final(config, store, folds, build, targets, *args, **kwargs)

    monkeypatch.setattr(distill_run, "run_model", spy)
    monkeypatch.setattr(distill_run, "run_oof_final", final_spy)
    fast = {"epochs": 1, "batch_size": 64, "threads": 1, "device": "cpu"}
    config = DistillConfig.model_validate({
        "labels": "soft",
        "students": [{"depth": 1, "width": 8},
                     {"params": {"depth": 1, "width": 8}, "labels": "hard"}],
        "train": fast, "final_train": fast,
    })
    run_distill(store, Predictions(tmp_path / "teacher" / "oof"), tmp_path / "d", config)
    assert seen == {"soft_student0": True, "soft_student1": False, "soft_final": True}
