"""A small run directory made by hand in a second or two, shaped like a pipeline run's
(store, test store, zoo models with folds, histories and predictions, Table 1 rows), for
the report's tests: a real pipeline takes a minute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import build_synthetic_store
from yt8mkit.data.predictions import PredictionsWriter
from yt8mkit.data.store import Store


def _noisy_truth(store: Store, rng: np.random.Generator, signal: float) -> np.ndarray:
    """Scores that know the labels a little: a report of pure noise would be empty."""
    truth = store.labels_dense(np.arange(store.num_videos))
    return (signal * truth + rng.random(truth.shape)).astype(np.float32) / (1 + signal)


def make_run(root: Path, vocabulary: bool = True) -> Path:
    """``root`` becomes the run directory; ``vocabulary`` False drops the generator's
    vocabulary.csv (a run without verticals)."""
    store_path, test_path = build_synthetic_store(
        root, videos=240, classes=12, seed=5, rgb_dim=16, audio_dim=8, test_videos=60,
        label_test=True,
    )
    assert test_path is not None
    if not vocabulary:
        (root / "synth" / "vocabulary.csv").unlink()
    store, test_store = Store(store_path), Store(test_path)
    rng = np.random.default_rng(0)
    (root / "config.yaml").write_text("name: tiny\n")
    for name, signal in (("good", 2.0), ("weak", 0.3)):
        model_dir = root / "zoo" / name
        for kind, s in (("oof", store), ("test", test_store)):
            writer = PredictionsWriter(model_dir / kind, s.num_videos, store.num_classes, 50)
            writer.write_dense(np.arange(s.num_videos), _noisy_truth(s, rng, signal))
            writer.close()
        for fold in range(2):
            history = [{"epoch": e, "train_loss": 0.5 / (e + 1), "gap": 0.3 + 0.1 * e,
                        "bce": 0.4 / (e + 1) + 0.05, "lr": 0.01} for e in range(4)]
            (model_dir / f"fold{fold}").mkdir(parents=True)
            (model_dir / f"fold{fold}" / "metrics.json").write_text(json.dumps(
                {"result": {"seconds": 1.5}, "history": history}))
        (model_dir / "metrics.json").write_text(json.dumps(
            {"name": name, "model": "logistic", "frame_level": name == "weak",
             "oof_gap": 0.5 + signal / 10, "oof_bce": 0.1, "test_gap": 0.5}))
    (root / "ensemble").mkdir()
    (root / "ensemble" / "members.json").write_text(json.dumps(["good", "weak"]))
    (root / "table_rows.json").write_text(json.dumps([
        {"name": "lightgbm_ensemble", "frame_level": False, "gap": 0.8, "bce": None,
         "in_ensemble": None, "test_gap": 0.79}]))
    return root
