"""`yt8m distill`, `export` and `predict` killed with SIGKILL at points of their progress
in a real process, then run again: distillation's outputs equal an uninterrupted run's
array for array; the one-shot outputs (the ONNX file, the submission) are absent after the
kill, the scratch they were made in is removed by the rerun, and the rerun's file equals an
uninterrupted run's byte for byte. Also export on a full disk (RLIMIT_FSIZE). Issue 17."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from yt8mkit.cli.main import app
from yt8mkit.data.predictions import Predictions
from yt8mkit.pipeline.config import PipelineConfig, demo_config
from yt8mkit.pipeline.run import run_pipeline

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model": {"name": "logistic"}, "batch_size": 64, "eval_batch_size": 256, "epochs": 2,
        "threads": 1, "device": "cpu", "optim": {"warmup_steps": 2}}


def _config(root: Path) -> PipelineConfig:
    data = demo_config().model_dump(mode="json")
    data["data"]["synth"].update(videos=300, classes=12, test_videos=60, rgb_dim=16,
                                 audio_dim=8, videos_per_shard=20)
    data["zoo"]["defaults"] = TINY
    data["zoo"]["models"] = {"lin": {}}
    distill = data["distill"]
    distill["students"] = distill["students"][:1]
    distill["student_overrides"] = {"width": 96}  # a model of about 25 kB
    distill["labels"] = "soft"
    for part in ("train", "final_train"):  # one thread: the same arithmetic in any process
        distill[part].update(threads=1, epochs=2)
    return PipelineConfig.from_dict(data, base=root)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished pipeline run: the uninterrupted outputs every test compares with."""
    root = tmp_path_factory.mktemp("second_level_kills")
    run_pipeline(_config(root), root / "run")
    from yt8mkit.locks import release_all

    release_all()  # the commands below lock the copies of it
    return root / "run"


def _yt8m(*args: str, limit: int | None = None) -> subprocess.Popen:
    def limit_size() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen([sys.executable, "-m", "yt8mkit", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=limit_size)


def _finish(*args: str) -> None:
    process = _yt8m(*args)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err


def _try_kill_when(folder: Path, pattern: str, count: int, *args: str) -> bool:
    """SIGKILL the command once ``count`` paths match ``pattern`` under ``folder``; False
    when it finished (exit 0) before the poll saw them (a short-lived file on a busy
    machine)."""
    process = _yt8m(*args)
    deadline = time.monotonic() + 120
    while len(list(folder.glob(pattern))) < count and process.poll() is None:
        assert time.monotonic() < deadline, "the command never got there"
        time.sleep(0.002)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    code = process.wait(timeout=60)
    assert code in (0, -signal.SIGKILL), process.communicate()
    return code == -signal.SIGKILL


def _kill_when(folder: Path, pattern: str, count: int, *args: str) -> None:
    # Killed, not finished: otherwise the rerun would prove nothing.
    assert _try_kill_when(folder, pattern, count, *args), "finished before the kill point"




def _copy_without(reference: Path, run: Path, *outputs: str) -> None:
    shutil.copytree(reference, run, ignore=shutil.ignore_patterns(".*lock", *outputs))


def _same_predictions(a: Path, b: Path) -> None:
    left, right = Predictions(a), Predictions(b)
    assert np.array_equal(np.asarray(left.indices), np.asarray(right.indices)), a
    assert np.array_equal(np.asarray(left.scores), np.asarray(right.scores)), a


def _ok(*args: str) -> None:
    """The rerun, in this process (its Python and PyTorch already loaded)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


def test_distill_killed_and_rerun_equals_an_uninterrupted_one(
    reference: Path, tmp_path: Path
) -> None:
    """Killed among the students, then again, resumed, while the final layer trains (its
    first checkpoint written)."""
    run = tmp_path / "run"
    _copy_without(reference, run, "distill", "final_model*", "*submission.csv")
    _kill_when(run, "distill/soft/student0/fold*/last.pt", 3, "distill", str(run))
    _kill_when(run, "distill/soft/final/head.pt", 1, "distill", str(run))
    _ok("distill", str(run))
    want = json.loads((reference / "distill" / "metrics.json").read_text())
    assert json.loads((run / "distill" / "metrics.json").read_text()) == want
    for model in ("student0", "final"):
        _same_predictions(run / "distill" / "soft" / model / "oof",
                          reference / "distill" / "soft" / model / "oof")
    _same_predictions(run / "distill" / "soft" / "final" / "test",
                      reference / "distill" / "soft" / "final" / "test")


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")
                  and not p.name.endswith("lock"))


def _same_export(run: Path, reference: Path) -> None:
    assert (run / "final_model.onnx").read_bytes() == \
        (reference / "final_model.onnx").read_bytes()
    skip = {"path", "seconds"}
    got = json.loads((run / "final_model.json").read_text())
    want = json.loads((reference / "final_model.json").read_text())
    assert {k: v for k, v in got.items() if k not in skip} == \
        {k: v for k, v in want.items() if k not in skip}


def test_export_killed_leaves_no_model_and_the_rerun_equals_an_uninterrupted_one(
    reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    _copy_without(reference, run, "final_model*", "*submission.csv")
    # Killed once the model is written in its scratch, before its checks against PyTorch.
    _kill_when(run, ".final_model.onnx.*/fp32.onnx", 1, "export", str(run))
    assert not (run / "final_model.onnx").exists() and not (run / "final_model.json").exists()
    assert _hidden(run), "the kill came after the scratch was removed: it proves nothing"
    _ok("export", str(run))
    assert _hidden(run) == []  # the killed export's scratch removed by the rerun
    _same_export(run, reference)


def test_export_on_a_full_disk_fails_clearly_and_the_rerun_is_clean(
    reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    _copy_without(reference, run, "final_model*", "*submission.csv")
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    size = (reference / "final_model.onnx").stat().st_size
    limit = size // 2
    assert (run / "run.log").stat().st_size + 2000 < limit  # run.log may grow, the model not
    process = _yt8m("export", str(run), limit=limit)
    out, err = process.communicate(timeout=300)
    said = out + err
    assert process.returncode == 1, said
    assert "File too large" in said and "final_model.onnx" in said, said
    assert "Traceback" not in said, said
    assert not (run / "final_model.onnx").exists() and _hidden(run) == []
    # Earlier outputs untouched (run.log, which the export appends to, and the lock aside).
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    kept = {p: t for p, t in after.items() if p.name not in ("run.log", ".lock")}
    assert kept == {p: t for p, t in before.items() if p.name != "run.log"}
    _ok("export", str(run))
    _same_export(run, reference)


def test_predict_killed_leaves_no_submission_and_the_rerun_equals_an_uninterrupted_one(
    reference: Path, tmp_path: Path
) -> None:
    """Killed while ingesting the TFRecords, then while writing the CSV; --names, whose
    column is added after the CSV is written, so it must not appear before either."""
    csv = tmp_path / "out" / "submission.csv"
    args = ["predict", str(reference / "final_model.onnx"), str(reference / "synth" / "test"),
            "--names", "--batch-size", "8", "--out"]
    _kill_when(csv.parent, ".submission.csv.*/store", 1, *args, str(csv))
    assert not csv.exists() and _hidden(csv.parent)
    # The CSV is written in a moment: a run that finished before the poll saw its scratch
    # proves nothing, so its output goes and the kill is tried again.
    for _ in range(5):
        if _try_kill_when(csv.parent, ".submission.csv.*/.submission.csv.*.partial", 1,
                          *args, str(csv)):
            break
        csv.unlink()
    else:
        pytest.fail("predict was never caught writing its CSV in 5 runs")
    assert not csv.exists() and _hidden(csv.parent)
    _ok(*args, str(csv))
    assert _hidden(csv.parent) == []
    clean = tmp_path / "clean.csv"
    _ok(*args, str(clean))
    assert csv.read_bytes() == clean.read_bytes() and "LabelNames" in csv.read_text()


def test_the_exported_model_takes_its_place_only_once_checked(
    reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GAP@20 check of the ONNX file against PyTorch runs before the file is at --out
    (it used to run after: a kill then left an unchecked model), and a failed check leaves
    nothing, not even scratch."""
    import yt8mkit.export.final as final

    run = tmp_path / "run"
    _copy_without(reference, run, "final_model*", "*submission.csv")
    seen: list[bool] = []

    def gap_seeing_out(*args, **kwargs) -> float:
        seen.append((run / "final_model.onnx").exists())
        return gap_at_k(*args, **kwargs)

    gap_at_k = final.gap_at_k
    monkeypatch.setattr(final, "gap_at_k", gap_seeing_out)
    _ok("export", str(run))
    assert seen == [False, False]  # PyTorch's GAP, then the file's: neither saw a model
    _same_export(run, reference)
    monkeypatch.setattr(final, "GAP_TOLERANCE", -1.0)  # every check fails
    (run / "final_model.onnx").unlink()
    result = CliRunner().invoke(app, ["export", str(run)])
    assert result.exit_code == 1 and "nothing was written" in result.output
    assert not (run / "final_model.onnx").exists() and _hidden(run) == []
