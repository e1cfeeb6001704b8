"""A pipeline whose zoo mixes video- and frame-level models, with k-means centroids and a
derived representation computed by the run itself: the shipped config loads, a tiny one
runs end to end through the stack, the derived model's predictions are aligned row for
row with the main store (selection split included), a rerun computes nothing again, and
typos in the new sections fail when the config is read."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from yt8mkit.config_files import ConfigError
from yt8mkit.data.folds import SELECTION
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.pipeline.run import run_pipeline
from yt8mkit.rundir import prediction_gap
from yt8mkit.zoo.config import ZooConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = {"batch_size": 32, "eval_batch_size": 128, "epochs": 1, "threads": 1, "device": "cpu",
        "optim": {"warmup_steps": 2}, "frames": {"max_frames": 20}}
CONFIG = {
    "name": "tiny_frames",
    "data": {"synth": {"videos": 120, "classes": 8, "seed": 3, "frames": True, "rgb_dim": 8,
                       "audio_dim": 4, "min_frames": 6, "max_frames": 20, "test_videos": 30,
                       "label_test": True}},
    "folds": {"num_folds": 3, "seed": 1, "selection_fraction": 0.2},
    "zoo": {
        "defaults": TINY,
        "centroids": {"c4": {"k": 4, "iterations": 2}},
        "models": {
            "video": {"model": {"name": "resnet_like", "params": {"inner_size": 16}}},
            "centroid": {"model": {"name": "centroids_resnet_like",
                                   "params": {"inner_size": 16, "centroids": "c4"}}},
        },
        "derived": {
            "stats": {"features": {"name": "statistics", "params": {"stats": ["mean", "max"]}},
                      "model": {"name": "resnet_like", "params": {"inner_size": 16}}},
        },
    },
    "stack": {"n_estimators": 20, "early_stopping_rounds": 5, "min_data_in_leaf": 5},
    "distill": None,
    "export": None,
}


def _config(tmp_path: Path, data: dict | None = None) -> PipelineConfig:
    return PipelineConfig.from_dict(copy.deepcopy(data or CONFIG), base=tmp_path)


def test_the_shipped_frame_configs_load() -> None:
    config = PipelineConfig.from_yaml(ROOT / "configs" / "synthetic" / "frame_pipeline.yaml")
    assert config.data.synth is not None and config.data.synth.frames
    assert config.zoo.centroids and config.zoo.derived
    levels = {c.frame_level for c in config.zoo.train_configs().values()}
    assert levels == {True, False}  # both levels in one zoo
    zoo = ZooConfig.from_yaml(ROOT / "configs" / "synthetic" / "frame_zoo.yaml")
    assert "pcp_resnet_like" in zoo.member_names()


def test_frame_pipeline_end_to_end_with_aligned_derived_predictions(tmp_path: Path) -> None:
    messages: list[str] = []
    result = run_pipeline(_config(tmp_path), tmp_path / "run", report=messages.append)
    run = tmp_path / "run"
    models = result.metrics["models"]
    assert {"video", "centroid", "stats"} <= set(models)
    assert models["stats"]["derived_from_frames"]["name"] == "statistics"
    assert json.loads((run / "ensemble" / "members.json").read_text()) == [
        "video", "centroid", "stats"]
    assert 0 < result.metrics["ensemble"]["oof_gap"] <= 1
    centroids = np.load(run / "centroids" / "c4.npy")
    assert centroids.shape == (4, 12)
    # The centroid model read the run's own centroids.
    trained = yaml.safe_load((run / "zoo" / "centroid" / "config.yaml").read_text())
    assert trained["model"]["params"]["centroids"] == str(run / "centroids" / "c4.npy")

    store, derived = Store(run / "store"), Store(run / "derived" / "stats" / "store")
    assert derived.ids() == store.ids()
    folds = store.folds()
    assert (folds == SELECTION).any()
    np.testing.assert_array_equal(derived.folds(), folds)
    rows = np.arange(store.num_videos)
    np.testing.assert_array_equal(derived.labels_dense(rows), store.labels_dense(rows))
    # Its predictions scored against the *main* store's labels give the model's own
    # figures (out of fold, and on the selection split), and the rows are the same videos.
    oof = Predictions(run / "zoo" / "stats" / "oof")
    assert len(oof) == store.num_videos
    assert prediction_gap(oof, store, np.flatnonzero(folds >= 0)) == pytest.approx(
        models["stats"]["oof_gap"], abs=1e-9)
    assert prediction_gap(oof, store, np.flatnonzero(folds == SELECTION)) == pytest.approx(
        models["stats"]["selection_gap"], abs=1e-9)
    test_store = Store(run / "derived" / "stats" / "test_store")
    assert test_store.ids() == Store(run / "test_store").ids()
    assert models["stats"]["test_gap"] > 0

    # A rerun computes nothing again.
    messages.clear()
    run_pipeline(_config(tmp_path), run, report=messages.append)
    assert "centroids c4: complete, skipped" in messages
    assert "derived stats/store: complete, skipped" in messages
    assert "0 jobs to run, 9 already done" in messages


def test_a_misaligned_derived_store_is_refused(tmp_path: Path) -> None:
    from yt8mkit.data.ingest import IngestConfig, ingest
    from yt8mkit.data.synth import SynthConfig, generate
    from yt8mkit.errors import Yt8mError
    from yt8mkit.features.derive import derive_store
    from yt8mkit.features.registry import RepresentationConfig
    from yt8mkit.zoo.frame_inputs import check_aligned

    for name, seed in (("a", 1), ("b", 2)):
        generate(SynthConfig(videos=20, classes=6, seed=seed, frames=True, rgb_dim=4,
                             audio_dim=2, min_frames=3, max_frames=8, id_prefix=name),
                 tmp_path / f"src_{name}")
        ingest([tmp_path / f"src_{name}"], tmp_path / name, IngestConfig(workers=1))
    other = derive_store(Store(tmp_path / "b"), RepresentationConfig(name="statistics"),
                         tmp_path / "derived_b")
    with pytest.raises(Yt8mError, match=r"not .* in order"):
        check_aligned(Store(tmp_path / "a"), other)


@pytest.mark.parametrize("where, typo, key_path", [
    (("zoo", "centroids", "c4"), {"kk": 4}, "zoo.centroids.c4.kk"),  # unknown field
    (("zoo", "derived", "stats"), {"epochz": 2}, "zoo.derived.stats.epochz"),
    (("zoo", "derived", "stats", "features"), {"name": "statistcs"},  # no such representation
     "zoo.derived.stats.features"),
    (("zoo", "derived", "stats", "frames"), {"max_frame": 10},  # unknown frame option
     "zoo.derived.stats.frames.max_frame"),
    (("zoo", "models", "centroid", "model", "params"), {"centroids": "c5"},  # no such entry
     "zoo"),
    # a frame-level model on a derived (video-level) store
    (("zoo", "derived", "stats", "model"), {"name": "attention_net", "params": {}}, "zoo"),
])
def test_a_typo_in_the_frame_sections_fails_at_load(
    tmp_path: Path, where: tuple[str, ...], typo: dict, key_path: str
) -> None:
    data = copy.deepcopy(CONFIG)
    node = data
    for key in where:
        node = node.setdefault(key, {})
    node.update(typo)
    with pytest.raises(ConfigError, match=rf"^pipeline config: {re.escape(key_path)}"):
        _config(tmp_path, data)


def test_zoo_command_computes_its_own_frame_inputs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yt8mkit.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "data"), "--videos", "60",
                                 "--classes", "6", "--frames"])
    assert result.exit_code == 0, result.output
    zoo = copy.deepcopy(CONFIG["zoo"])
    zoo.update(name="z", store=str(tmp_path / "data"))
    zoo["defaults"]["frames"] = {"max_frames": 20}
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(zoo))
    result = runner.invoke(app, ["zoo", str(tmp_path / "zoo.yaml"), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    for name in ("video", "centroid", "stats"):
        assert "oof_gap" in json.loads((tmp_path / "run" / name / "metrics.json").read_text())
    assert (tmp_path / "run" / "centroids" / "c4.npy").is_file()


def test_distill_and_export_run_on_a_frame_level_store(tmp_path: Path) -> None:
    """Students read video-level features: a frame-level store has them (each video's mean
    frame), so the later stages run too, though frame_pipeline.yaml leaves them out."""
    from yt8mkit.pipeline.config import demo_config

    data = copy.deepcopy(CONFIG)
    data["zoo"]["models"].pop("centroid")
    data["zoo"].pop("centroids")
    distill = demo_config().model_dump(mode="json")["distill"]
    distill["students"] = distill["students"][:1]
    for key in ("train", "final_train"):
        distill[key].update(epochs=1, threads=1, device="cpu")
    data.update(distill=distill, export={"fold": 0})
    result = run_pipeline(_config(tmp_path, data), tmp_path / "run")
    assert result.metrics["export"]["top20_agreement"] > 0.9
    assert 0 < result.metrics["test"]["gap"] <= 1
