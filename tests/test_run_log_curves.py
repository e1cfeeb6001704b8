"""run.log and each job's curves (CSV and TensorBoard events) grow across a resume
without losing what the interrupted run wrote."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from yt8mkit.data.store import Store
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.curves import COLUMNS, CSV_FILE
from yt8mkit.train.runlog import ENV, RunLog, log_event
from yt8mkit.train.trainer import train_fold

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def _config(epochs: int) -> TrainConfig:
    return TrainConfig.model_validate({
        "name": "tiny", "model": {"name": "logistic"}, "batch_size": 128,
        "eval_batch_size": 256, "epochs": epochs, "patience": 10, "threads": 1,
        "device": "cpu", "optim": {"lr": 0.01, "warmup_steps": 2},
    })


class Crash(Exception):
    pass


def _crash_after(epoch: int) -> Callable[[str, dict], None]:
    def progress(kind: str, info: dict) -> None:
        if kind == "epoch" and info["epoch"] == epoch:
            raise Crash
    return progress


def _rows(path: Path) -> list[list[str]]:
    with path.open() as f:
        return list(csv.reader(f))


def _tensorboard_scalars(fold_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file in the folder, read by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(fold_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_run_log_and_curves_grow_across_a_resume(small_video_store, tmp_path: Path):
    store = Store(small_video_store[0])
    folds = store.folds()
    train_rows, valid_rows = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    run = tmp_path / "run"
    fold_dir = run / "model" / "fold0"
    log = RunLog(run)

    with pytest.raises(Crash), log.active("first attempt"):
        train_fold(_config(4), store, train_rows, valid_rows, fold_dir, _crash_after(1))
    first_log = log.path.read_text().splitlines()
    first_csv = _rows(fold_dir / CSV_FILE)
    assert first_csv[0] == list(COLUMNS)
    assert [r[0] for r in first_csv[1:]] == ["0", "1"]
    assert all(float(r[COLUMNS.index("seconds")]) > 0 for r in first_csv[1:])
    assert any("error in first attempt: Crash" in line for line in first_log)
    assert sum("epoch model/fold0" in line for line in first_log) == 2

    with log.active("resume"):
        train_fold(_config(4), store, train_rows, valid_rows, fold_dir)
    second_log = log.path.read_text().splitlines()
    second_csv = _rows(fold_dir / CSV_FILE)
    # Nothing written before is lost or changed; the resumed epochs follow, once each.
    assert second_log[: len(first_log)] == first_log
    assert second_csv[: len(first_csv)] == first_csv
    assert [r[0] for r in second_csv[1:]] == ["0", "1", "2", "3"]
    assert all(STAMP.match(line) for line in second_log)
    epochs = [line for line in second_log if "epoch model/fold0" in line]
    assert [int(re.search(r"fold0 (\d+):", e).group(1)) for e in epochs] == [0, 1, 2, 3]
    assert second_log[-1].endswith("end resume")

    scalars = _tensorboard_scalars(fold_dir)
    assert len(list(fold_dir.glob("events.out.tfevents.*"))) == 2  # one per process run
    assert [step for step, _ in scalars["valid/gap20"]] == [0, 1, 2, 3]
    csv_gap = [float(r[COLUMNS.index("valid_gap")]) for r in second_csv[1:]]
    np.testing.assert_allclose([v for _, v in scalars["valid/gap20"]], csv_gap, rtol=1e-6)
    assert {"train/loss", "valid/bce", "train/lr", "time/epoch_seconds"} <= set(scalars)


def test_log_event_goes_nowhere_without_an_active_run(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    log_event("lost")  # no error, no file
    log = RunLog(tmp_path)
    with log.active("x"):
        assert os.environ[ENV] == str(log.path.resolve())
        log_event("multi\nline")
    assert ENV not in os.environ
    lines = log.path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [f"start x (pid {os.getpid()})",
                                                          "multi | line", "end x"]
