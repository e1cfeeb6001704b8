"""The trainer and the out-of-fold run: determinism, resume, complete out-of-fold and test
predictions, soft targets, and that training beats the label-frequency baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from yt8mkit.baselines import frequency_prior
from yt8mkit.data.predictions import Predictions, PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.data.submission import read_submission
from yt8mkit.errors import Yt8mError
from yt8mkit.metrics import gap_at_k, gap_from_top_k
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import run_model
from yt8mkit.train.trainer import evaluate, load_best, train_fold


def _config(**overrides: object) -> TrainConfig:
    base: dict = {
        "name": "tiny",
        "model": {"name": "resnet_like", "params": {"inner_size": 32, "dropout": 0.2}},
        "batch_size": 64,
        "eval_batch_size": 128,
        "epochs": 3,
        "patience": 5,
        "optim": {"lr": 0.003, "warmup_steps": 5},
        "mixup_alpha": 0.4,
        "threads": 1,
        "device": "cpu",
    }
    base.update(overrides)
    return TrainConfig.model_validate(base)


def _fold_rows(store: Store, fold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    folds = store.folds()
    return np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)


def test_same_seed_same_model_and_different_seed_differs(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = Store(small_video_store[0])
    train_rows, valid_rows = _fold_rows(store)
    states = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train_fold(_config(seed=seed), store, train_rows, valid_rows, tmp_path / name)
        states.append(torch.load(tmp_path / name / "last.pt", weights_only=False)["model"])
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert any(not torch.equal(states[0][k], states[2][k]) for k in states[0]
               if states[0][k].is_floating_point())


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resumed_fold_equals_uninterrupted(
    small_video_store: tuple[Path, Path], tmp_path: Path, ema_decay: float | None
) -> None:
    store = Store(small_video_store[0])
    train_rows, valid_rows = _fold_rows(store)
    config = _config(epochs=3, ema_decay=ema_decay)
    full = train_fold(config, store, train_rows, valid_rows, tmp_path / "full")

    class Crash(Exception):
        pass

    def crash_after_first_epoch(kind: str, info: dict) -> None:
        if kind == "epoch" and info["epoch"] == 0:
            raise Crash

    with pytest.raises(Crash):
        train_fold(config, store, train_rows, valid_rows, tmp_path / "resumed",
                   crash_after_first_epoch)
    resumed = train_fold(config, store, train_rows, valid_rows, tmp_path / "resumed")
    assert resumed.best_gap == full.best_gap
    assert resumed.best_epoch == full.best_epoch
    a = torch.load(tmp_path / "full" / "best.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "resumed" / "best.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_weight_average_is_what_is_validated_and_saved(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = Store(small_video_store[0])
    train_rows, valid_rows = _fold_rows(store)
    states = {}
    for name, decay in (("raw", None), ("tiny_decay", 1e-9), ("ema", 0.9)):
        config = _config(epochs=1, ema_decay=decay)
        result = train_fold(config, store, train_rows, valid_rows, tmp_path / name)
        states[name] = torch.load(tmp_path / name / "best.pt", weights_only=False)["model"]
        model = load_best(config, store, tmp_path / name, torch.device("cpu"))
        assert evaluate(model, store, valid_rows, config, torch.device("cpu"))[0] == (
            result.best_gap)
    raw, ema = states["raw"], states["ema"]
    # The average's keys are the model's own: load_best and export need no change.
    assert set(ema) == set(raw)
    floats = [k for k in raw if raw[k].is_floating_point()]
    # An average that forgets at once is the raw weights; a slow one is not.
    assert all(torch.allclose(states["tiny_decay"][k], raw[k], atol=1e-6) for k in floats)
    assert any(not torch.allclose(ema[k], raw[k], atol=1e-4) for k in floats)


def test_out_of_fold_run_is_complete_and_beats_the_prior(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store, test_store = Store(small_video_store[0]), Store(small_video_store[1])
    config = _config(epochs=4)
    metrics = run_model(config, store, tmp_path / "run", test_store)
    oof = Predictions(tmp_path / "run" / "oof")
    assert len(oof) == store.num_videos
    assert oof.meta.top_k == min(config.top_k, store.num_classes)
    # Every video's row holds a real top-K: distinct labels, scores sorted.
    indices, scores = np.asarray(oof.indices), np.asarray(oof.scores, np.float32)
    assert all(len(set(row)) == row.size for row in indices)
    assert np.all(np.diff(scores, axis=1) <= 0)
    labels = store.labels_dense(np.arange(store.num_videos))
    prior = np.tile(frequency_prior(store), (store.num_videos, 1))
    assert metrics["oof_gap"] > gap_at_k(prior, labels) + 0.05
    assert metrics["oof_gap"] == pytest.approx(gap_at_k(oof.dense(slice(None)), labels), abs=1e-3)
    submission = read_submission(tmp_path / "run" / "submission.csv")
    assert list(submission.ids) == test_store.ids()
    assert 0.0 < metrics["test_gap"] <= 1.0
    # A rerun finds every fold done and trains nothing.
    before = (tmp_path / "run" / "fold0" / "best.pt").stat().st_mtime_ns
    again = run_model(config, store, tmp_path / "run", test_store)
    assert again["oof_gap"] == metrics["oof_gap"]
    assert (tmp_path / "run" / "fold0" / "best.pt").stat().st_mtime_ns == before
    fold_metrics = json.loads((tmp_path / "run" / "fold0" / "metrics.json").read_text())
    assert fold_metrics["history"] and "gap" in fold_metrics["history"][0]


def test_out_of_fold_predictions_come_from_the_best_epoch_not_the_last(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = Store(small_video_store[0])
    # A learning rate this high makes late epochs worse than the best one.
    config = _config(epochs=4, optim={"lr": 0.3, "warmup_steps": 0}, mixup_alpha=0.0)
    run_model(config, store, tmp_path / "run", folds_to_run=[0])
    history = json.loads((tmp_path / "run" / "fold0" / "metrics.json").read_text())["history"]
    best = max(history, key=lambda r: r["gap"])
    oof = Predictions(tmp_path / "run" / "fold0" / "oof")
    rows = np.load(tmp_path / "run" / "fold0" / "oof_rows.npy")
    gap = gap_at_k(oof.dense(slice(None)), store.labels_dense(rows))
    assert gap == pytest.approx(best["gap"], abs=2e-3)


def test_soft_targets_replace_the_labels(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = Store(small_video_store[0])
    train_rows, valid_rows = _fold_rows(store)
    seen: list[np.ndarray] = []

    def soft(rows: np.ndarray) -> np.ndarray:
        seen.append(rows)
        return np.full((len(rows), store.num_classes), 0.25, np.float32)

    train_fold(_config(epochs=1, mixup_alpha=0.0), store, train_rows, valid_rows, tmp_path,
               targets=soft)
    assert seen and set(np.concatenate(seen)) <= set(train_rows.tolist())


def _denormal_survives() -> bool:
    """Whether arithmetic on a denormal float keeps it (flush-to-zero off)."""
    return float(torch.tensor([1e-40]) * 1.0) != 0.0


@pytest.mark.parametrize("flush", [True, False])
def test_training_sets_denormal_flushing_as_configured(
    small_video_store: tuple[Path, Path], tmp_path: Path, flush: bool
) -> None:
    store = Store(small_video_store[0])
    train_rows, valid_rows = _fold_rows(store)
    torch.set_flush_denormal(not flush)
    try:
        train_fold(_config(epochs=1, flush_denormal=flush), store, train_rows, valid_rows,
                   tmp_path)
        assert _denormal_survives() is not flush
    finally:
        torch.set_flush_denormal(False)


def test_another_config_in_the_same_run_directory_is_refused(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    store = Store(small_video_store[0])
    run_model(_config(epochs=1), store, tmp_path, folds_to_run=[0])
    with pytest.raises(Yt8mError, match="another config"):
        run_model(_config(epochs=2), store, tmp_path, folds_to_run=[0])
    # A run written before a setting existed (here: without ema_decay) holds its default:
    # the same config, so it resumes.
    saved = tmp_path / "config.yaml"
    older = [line for line in saved.read_text().splitlines() if "ema_decay" not in line]
    assert len(older) < len(saved.read_text().splitlines())
    saved.write_text("\n".join(older) + "\n")
    run_model(_config(epochs=1), store, tmp_path, folds_to_run=[0])


@pytest.fixture(scope="module")
def small_frame_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import build_synthetic_store

    store, test = build_synthetic_store(
        tmp_path_factory.mktemp("small_frames"), videos=200, classes=12, seed=5, frames=True,
        rgb_dim=16, audio_dim=8, min_frames=4, max_frames=40, test_videos=40, label_test=True,
    )
    assert test is not None
    return store, test


def _frame_config(**overrides: object) -> TrainConfig:
    return _config(**{
        "name": "frames",
        "model": {"name": "attention_net", "params": {"hidden": 16, "layers": 2,
                                                      "head_sizes": [32], "dropout": 0.1}},
        "batch_size": 32, "epochs": 3, **overrides,
    })


def test_frame_model_trains_out_of_fold_with_mixup_and_is_deterministic(
    small_frame_store: tuple[Path, Path], tmp_path: Path
) -> None:
    """The same trainer feeds a frame-level model padded frame batches (mixup mixes the
    frames and their masks): complete out-of-fold and test predictions, better than the
    label prior, and the same predictions again under the same seed."""
    store, test_store = Store(small_frame_store[0]), Store(small_frame_store[1])
    config = _frame_config()
    metrics = run_model(config, store, tmp_path / "a", test_store)
    assert metrics["frame_level"] is True
    labels = store.labels_dense(np.arange(store.num_videos))
    prior = np.tile(frequency_prior(store), (store.num_videos, 1))
    assert metrics["oof_gap"] > gap_at_k(prior, labels) + 0.05
    assert len(Predictions(tmp_path / "a" / "oof")) == store.num_videos
    assert list(read_submission(tmp_path / "a" / "submission.csv").ids) == test_store.ids()
    run_model(config, store, tmp_path / "b", folds_to_run=[0])
    a = Predictions(tmp_path / "a" / "fold0" / "oof")
    b = Predictions(tmp_path / "b" / "fold0" / "oof")
    np.testing.assert_array_equal(np.asarray(a.indices), np.asarray(b.indices))
    np.testing.assert_array_equal(np.asarray(a.scores), np.asarray(b.scores))


def test_frame_model_on_a_video_level_store_is_a_clear_error(
    small_video_store: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="frame-level but the store"):
        run_model(_frame_config(), Store(small_video_store[0]), tmp_path, folds_to_run=[0])


def test_stored_predictions_keep_the_gap_of_the_probabilities(tmp_path: Path) -> None:
    """Near-equal scores (which float16 storage would turn into ties) keep their order."""
    rng = np.random.default_rng(0)
    probs = (0.5 + rng.random((200, 30)) * 1e-3).astype(np.float32)
    labels = (rng.random((200, 30)) < 0.1).astype(np.float32)
    writer = PredictionsWriter(tmp_path / "p", 200, 30, 30)
    writer.write_dense(np.arange(200), probs)
    stored = writer.close()
    exact = gap_at_k(probs, labels)
    assert gap_from_top_k(np.asarray(stored.indices, np.int64), np.asarray(stored.scores),
                          labels) == pytest.approx(exact, abs=1e-12)
    # The same scores rounded to float16 score lower: the test can tell the difference.
    assert gap_at_k(probs.astype(np.float16).astype(np.float32), labels) < exact - 1e-3
