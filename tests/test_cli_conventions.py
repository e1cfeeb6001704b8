"""The command line's conventions: results on stdout (tables, JSON, paths), progress and
errors on stderr; exit 1 for a data or runtime error, 2 for a usage error; one handler for
the project's errors, every other exception keeps its traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from yt8mkit.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_info_writes_its_table_to_stdout_and_json_with_json(
        small_video_store: tuple[Path, Path], tmp_path: Path) -> None:
    store = str(small_video_store[0])
    # A real process, redirected as a shell would: `yt8m info STORE > f`.
    out = tmp_path / "f"
    with out.open("w") as f:
        done = subprocess.run([sys.executable, "-m", "yt8mkit", "info", store], stdout=f,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "videos" in out.read_text() and "500" in out.read_text()
    facts = json.loads(runner.invoke(app, ["info", store, "--json"]).stdout)
    assert facts["videos"] == 500 and facts["classes"] == 20 and facts["folds"]["num_folds"] == 5


def test_a_data_error_exits_1_on_stderr_a_usage_error_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["info", str(tmp_path / "none")])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith(f"error: {tmp_path / 'none'}")
    usage = runner.invoke(app, ["info"])  # no STORE
    assert usage.exit_code == 2 and usage.stdout == ""
    usage = runner.invoke(app, ["zoo", "z.yaml", "--backend", "slurm"])
    assert usage.exit_code == 2 and "slurm" in usage.stderr and "local" in usage.stderr


def test_a_bug_keeps_its_traceback(small_video_store: tuple[Path, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from yt8mkit.data import store as store_module

    def broken(self: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(store_module.Store, "label_counts", broken)
    result = runner.invoke(app, ["info", str(small_video_store[0])])
    # Not turned into "error: ..." and exit 1: the exception itself reaches the caller.
    assert isinstance(result.exception, RuntimeError) and "error:" not in result.stderr


def test_config_prints_the_resolved_config_and_names_a_typo(tmp_path: Path) -> None:
    model = tmp_path / "m.yaml"
    model.write_text("model: {name: logistic}\n")
    shown = runner.invoke(app, ["config", str(model), "--set", "optim.lr=0.25"])
    assert shown.exit_code == 0, shown.output
    data = yaml.safe_load(shown.stdout)
    assert data["optim"]["lr"] == 0.25 and data["epochs"] == 10  # a default, filled in
    assert data["model"]["params"]["input_norm"] == "l2"
    typo = runner.invoke(app, ["config", str(model), "--set", "optim.lrr=1"])
    assert typo.exit_code == 1 and "m.yaml: optim.lrr: unknown key; known:" in typo.stderr
    pipeline = runner.invoke(app, ["config", str(ROOT / "configs" / "real" / "pipeline.yaml"),
                                   "--json"])
    assert pipeline.exit_code == 0, pipeline.output
    resolved = json.loads(pipeline.stdout)
    assert Path(resolved["data"]["train"][0]).is_absolute()
    assert set(resolved["zoo"]["resolved_models"]) >= {"logistic", "resnet_like"}


def test_models_lists_the_registry_and_a_models_defaults() -> None:
    listing = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    kinds = {row["name"]: row["kind"] for row in listing}
    assert kinds["resnet_like"] == "video" and kinds["transformer_encoder"] == "frame"
    one = json.loads(runner.invoke(app, ["models", "resnet_like", "--json"]).stdout)
    defaults = {p["name"]: p["default"] for p in one["params"]}
    assert defaults["inner_size"] == 2048 and defaults["dropout"] == 0.5
    unknown = runner.invoke(app, ["models", "resnet_lik"])
    assert unknown.exit_code == 1 and "unknown model 'resnet_lik'" in unknown.stderr


def test_train_on_some_folds_says_what_it_did_not_write_and_table_needs_models(
        small_video_store: tuple[Path, Path], tmp_path: Path) -> None:
    config = tmp_path / "m.yaml"
    config.write_text("name: m\nmodel: {name: logistic}\nepochs: 1\nthreads: 1\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--store", str(small_video_store[0]),
                                 "--folds", "0", "--out", str(run), "--set", "batch_size=128"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["folds_trained"] == [0] and "oof_gap" not in summary
    assert "trained fold(s) [0]" in result.stderr and "not written" in result.stderr
    assert not (run / "submission.csv").exists()
    # A train run has no table of models: said, exit 1, nothing on stdout.
    table = runner.invoke(app, ["table", str(run)])
    assert table.exit_code == 1 and table.stdout == "" and "no finished model" in table.stderr
