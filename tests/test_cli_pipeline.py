"""The commands end to end on small synthetic data: synth → ingest → train / zoo → table →
evaluate, and a pipeline that resumes without redoing finished stages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from yt8mkit.cli.main import app
from yt8mkit.config_files import ConfigError
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.export import OnnxPredictor
from yt8mkit.pipeline.config import PipelineConfig, demo_config
from yt8mkit.pipeline.run import run_pipeline

runner = CliRunner()
TINY_MODEL = {
    "model": {"name": "resnet_like", "params": {"inner_size": 32}},
    "batch_size": 64, "eval_batch_size": 256, "epochs": 1, "threads": 1, "device": "cpu",
    "optim": {"warmup_steps": 2},
}


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _gap_of(evaluate_output: str) -> float:
    match = re.search(r"GAP@20\D+([0-9.]+)", evaluate_output)
    assert match, evaluate_output
    return float(match.group(1))


def test_synth_train_table_evaluate(tmp_path: Path) -> None:
    out = _ok(["synth", "--out", str(tmp_path / "data"), "--videos", "300", "--classes", "15",
               "--test-videos", "60", "--label-test"])
    assert "300 videos" in out
    _ok(["synth", "--out", str(tmp_path / "intros"), "--videos", "20", "--frames",
         "--bumpers", "0.5"])
    assert json.loads((tmp_path / "intros" / "synth.json").read_text())["config"][
        "bumper_share"] == 0.5
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_MODEL))
    run = tmp_path / "run"
    out = _ok(["train", str(config), "--store", str(tmp_path / "data"),
               "--test-store", str(tmp_path / "data" / "test"), "--out", str(run)])
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["oof_gap"] < 1 and 0 < metrics["test_gap"] < 1
    out = _ok(["evaluate", str(run / "submission.csv"), "--labels",
               str(tmp_path / "data" / "test")])
    # The CSV holds scores to 6 decimals, as the official starter writes them: rounding
    # can tie near-equal scores, so its GAP may differ slightly from the predictions'.
    assert abs(_gap_of(out) - metrics["test_gap"]) < 1e-3 and "Hit@1" in out
    # The same labels as a store, and the store ingested on the fly by `train`.
    again = _ok(["evaluate", str(run / "submission.csv"), "--labels", str(run / "test_store")])
    assert _gap_of(again) == _gap_of(out)
    assert "tiny" in _ok(["table", str(tmp_path)])  # finds run/metrics.json
    bad = runner.invoke(app, ["evaluate", str(run / "submission.csv"), "--labels",
                              str(tmp_path / "data")])  # other videos: ids do not match
    assert bad.exit_code == 1 and "not among" in bad.output


def test_zoo_command_and_table(tmp_path: Path) -> None:
    _ok(["synth", "--out", str(tmp_path / "data"), "--videos", "250", "--classes", "12"])
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(yaml.safe_dump({
        "name": "z", "store": str(tmp_path / "data"), "defaults": TINY_MODEL,
        "models": {"a": {}, "b": {"model": {"name": "logistic"}}},
    }))
    out = _ok(["zoo", str(zoo), "--out", str(tmp_path / "run")])
    assert "10 jobs to run" in out
    # Without a terminal, the events come as the run log's timestamped lines.
    assert re.search(r"Z epoch b/fold3 0: train loss", out)
    assert (tmp_path / "run" / "run.log").read_text().splitlines()[-1].endswith("end zoo z")
    assert (tmp_path / "run" / "a" / "fold0" / "curves.csv").is_file()
    table = _ok(["table", str(tmp_path / "run")])
    assert "GAP@20" in table and " a " in table and " b " in table
    again = _ok(["zoo", str(zoo), "--out", str(tmp_path / "run")])
    assert "0 jobs to run, 10 already done" in again


def test_pipeline_resumes_without_redoing_stages(tmp_path: Path) -> None:
    data = demo_config().model_dump(mode="json")
    data["data"]["synth"].update(videos=300, classes=15, test_videos=60)
    data["zoo"]["defaults"] = TINY_MODEL
    data["zoo"]["models"] = {"tiny": {}}
    config = PipelineConfig.from_dict(data, base=tmp_path)
    first = run_pipeline(config, tmp_path / "run")
    assert first.submission is not None and first.submission.is_file()
    assert 0 < first.metrics["test"]["gap"] < 1
    rows = {r["name"]: r for r in json.loads((tmp_path / "run" / "table_rows.json").read_text())}
    # Held-out GAP beside out-of-fold GAP (of the fold models' mean prediction).
    assert 0 < rows["lightgbm_ensemble"]["test_gap"] < 1
    assert 0 < rows["final_model_soft_labels"]["test_gap"] < 1
    assert "test GAP@20" in _ok(["table", str(tmp_path / "run")])
    stamp = (tmp_path / "run" / "zoo" / "tiny" / "fold0" / "best.pt").stat().st_mtime_ns
    first_log = (tmp_path / "run" / "run.log").read_text().splitlines()
    assert any(" epoch tiny/fold4 0: " in line for line in first_log)
    assert any(" stage stack: " in line for line in first_log)
    assert sum(" done lightgbm fold " in line for line in first_log) == 5
    assert first_log[-1].endswith("end pipeline demo")
    second = run_pipeline(config, tmp_path / "run")
    second_log = (tmp_path / "run" / "run.log").read_text().splitlines()
    assert second_log[: len(first_log)] == first_log
    assert any(line.endswith("stage distill: complete, skipped")
               for line in second_log[len(first_log):])
    assert {"synth", "baseline", "stack", "distill", "export", "predict"} <= set(
        second.skipped_stages)
    assert (tmp_path / "run" / "zoo" / "tiny" / "fold0" / "best.pt").stat().st_mtime_ns == stamp
    assert second.metrics["test"] == first.metrics["test"]
    # The command's results as JSON on stdout (the run resumed: nothing recomputed).
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(data))
    printed = runner.invoke(app, ["pipeline", str(config_file), "--out",
                                  str(tmp_path / "run"), "--json"])
    assert printed.exit_code == 0, printed.output
    summary = json.loads(printed.stdout)
    assert summary["test"] == first.metrics["test"]
    assert {"lightgbm_ensemble", "tiny"} <= {row["name"] for row in summary["models"]}
    assert summary["submission"] == str(first.submission)
    assert Store(tmp_path / "run" / "store").num_videos == 300
    # How it runs is not what it computes: more workers resume the same run.
    data["workers"] = 2
    resumed = run_pipeline(PipelineConfig.from_dict(data, base=tmp_path), tmp_path / "run")
    assert resumed.metrics["test"] == first.metrics["test"]
    data["zoo"]["models"] = {"other": {}}
    other = PipelineConfig.from_dict(data, base=tmp_path)
    result = runner.invoke(app, ["pipeline", "--help"])
    assert result.exit_code == 0
    try:
        run_pipeline(other, tmp_path / "run")
    except Exception as err:
        assert "another config" in str(err)
    else:
        raise AssertionError("a different config in the same run directory must be refused")


def test_second_level_commands_on_a_pipeline_run(tmp_path: Path) -> None:
    """`yt8m stack`, `distill`, `export` and `predict` redo a pipeline run's second level
    from its zoo; the submission of `predict` is read back by `evaluate`."""
    data = demo_config().model_dump(mode="json")
    data["data"]["synth"].update(videos=300, classes=15, test_videos=60)
    data["zoo"]["defaults"] = TINY_MODEL
    data["zoo"]["models"] = {"tiny": {}, "lin": {"model": {"name": "logistic"}}}
    data["distill"]["students"] = data["distill"]["students"][:2]
    for part in ("train", "final_train"):  # one thread each: same arithmetic in a worker
        data["distill"][part]["threads"] = 1
    config = PipelineConfig.from_dict(data, base=tmp_path)
    run = tmp_path / "run"
    run_pipeline(config, run)
    for done in ("ensemble", "distill"):
        shutil.rmtree(run / done)
    (run / "final_model.onnx").unlink()

    bad = runner.invoke(app, ["distill", str(run)])
    assert bad.exit_code == 1 and "run `yt8m stack` first" in bad.output
    out = _ok(["stack", str(run)])
    assert "stacking 2 models" in out and (run / "ensemble" / "oof").is_dir()
    _ok(["distill", str(run)])
    inline = json.loads((run / "distill" / "metrics.json").read_text())
    assert inline["soft_final"]["oof_gap"] > 0
    # The folds of the students, then of the final models, on two worker processes:
    # the same results as in this process.
    shutil.rmtree(run / "distill")
    _ok(["distill", str(run), "--workers", "2"])
    assert json.loads((run / "distill" / "metrics.json").read_text()) == inline
    bad = runner.invoke(app, ["export", str(run), "--max-size", "1000"])
    assert bad.exit_code == 1 and "over the budget of 1,000 bytes" in bad.output
    assert not (run / "final_model.onnx").exists()
    _ok(["export", str(run)])
    assert (run / "final_model.onnx").is_file()
    _ok(["export", str(run), "--labels", "hard", "--out", str(tmp_path / "hard.onnx")])
    assert json.loads((tmp_path / "hard.json").read_text())["labels"] == "hard"
    bad = runner.invoke(app, ["export", str(run), "--labels", "medium"])
    assert bad.exit_code == 2 and "labels" in bad.output
    # Every fold's final model in one file: its probabilities are the mean of theirs,
    # which is what the run's test predictions of the final model hold.
    _ok(["export", str(run), "--fold", "all", "--out", str(tmp_path / "all.onnx")])
    assert json.loads((tmp_path / "all.json").read_text())["fold"] == "all"
    test_store = Store(run / "test_store")
    rows = np.arange(test_store.num_videos)
    probs = OnnxPredictor(tmp_path / "all.onnx").predict(
        {m: np.asarray(test_store.video_features(m)[rows], np.float32)
         for m in test_store.modalities})
    mean = Predictions(run / "distill" / "soft" / "final" / "test").dense(rows)
    top = np.argsort(-mean, axis=1)[:, :5]
    np.testing.assert_allclose(np.take_along_axis(probs, top, 1),
                               np.take_along_axis(mean, top, 1), rtol=1e-5)
    bad = runner.invoke(app, ["export", str(run), "--fold", "seven"])
    assert bad.exit_code == 2 and "fold" in bad.output
    csv = tmp_path / "out" / "submission.csv"
    test_data = str(run / "synth" / "test")
    out = _ok(["predict", str(run / "final_model.onnx"), test_data, "--out", str(csv)])
    assert "60 videos" in out and not list(csv.parent.glob(".submission_*"))
    evaluated = _ok(["evaluate", str(csv), "--labels", test_data])
    assert "GAP@20" in evaluated
    # The same predictions from the store the pipeline ingested.
    again = tmp_path / "again.csv"
    _ok(["predict", str(run / "final_model.onnx"), str(run / "test_store"), "--out", str(again)])
    assert again.read_text() == csv.read_text()
    bad = runner.invoke(app, ["stack", str(tmp_path / "nothing")])
    assert bad.exit_code == 1 and "no such run directory" in bad.output


def test_export_must_name_a_final_model_that_distillation_trains(tmp_path: Path) -> None:
    data = demo_config().model_dump(mode="json")
    data["distill"]["labels"] = "soft"
    data["export"]["labels"] = "hard"
    with pytest.raises(ConfigError, match=r"export\.labels: 'hard', but distill\.labels "
                                          r"'soft' trains no such final model"):
        PipelineConfig.from_dict(data, base=tmp_path)
    data["distill"]["labels"] = "hard"
    config = PipelineConfig.from_dict(data, base=tmp_path)
    assert config.distill is not None and config.distill.kinds() == ["hard"]
