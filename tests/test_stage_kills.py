"""Later stages killed with SIGKILL at several points of a real process, then run again:
the resumed outputs equal those of an uninterrupted run, array for array (issue 17's
resume rule, for the zoo's training jobs and the LightGBM stack)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from yt8mkit.data.predictions import Predictions

ZOO = {
    "name": "killed_zoo",
    "defaults": {"batch_size": 64, "eval_batch_size": 256, "epochs": 3, "threads": 1,
                 "device": "cpu", "optim": {"warmup_steps": 2}, "seed": 0, "top_k": 20},
    "models": {"tiny": {"model": {"name": "resnet_like", "params": {"inner_size": 32}}},
               "logistic": {"model": {"name": "logistic"}}},
}


def _yt8m(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "yt8mkit", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


def _finish(*args: str) -> float:
    began = time.perf_counter()
    process = _yt8m(*args)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()
    return time.perf_counter() - began


def _kill_when(run: Path, pattern: str, count: int, *args: str) -> None:
    """SIGKILL the command as soon as ``count`` files match ``pattern`` under ``run`` (a
    point in its progress, whatever the machine's speed)."""
    process = _yt8m(*args)
    deadline = time.monotonic() + 300
    while len(list(run.glob(pattern))) < count and process.poll() is None:
        assert time.monotonic() < deadline, "the command never got there"
        time.sleep(0.005)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    # It was killed, not finished: the rerun below really resumes.
    assert process.wait(timeout=60) == -signal.SIGKILL


def _same_predictions(a: Path, b: Path) -> None:
    left, right = Predictions(a), Predictions(b)
    assert np.array_equal(np.asarray(left.indices), np.asarray(right.indices)), a
    assert np.array_equal(np.asarray(left.scores), np.asarray(right.scores)), a


@pytest.fixture(scope="module")
def clean(small_video_store: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Path, Path, Path, float, float]:
    """An uninterrupted zoo and stack, and how long each took."""
    root = tmp_path_factory.mktemp("kills")
    zoo_file = root / "zoo.yaml"
    zoo_file.write_text(yaml.safe_dump(ZOO))
    store = small_video_store[0]
    zoo_seconds = _finish("zoo", str(zoo_file), "--store", str(store), "--out",
                          str(root / "clean"))
    # The second-level commands read the run's own store.
    shutil.copytree(store, root / "clean" / "store", ignore=shutil.ignore_patterns(".*lock"))
    stack_seconds = _finish("stack", str(root / "clean"))
    return zoo_file, store, root / "clean", zoo_seconds, stack_seconds


@pytest.mark.parametrize("jobs_done", [0, 3, 7])
def test_a_zoo_killed_and_rerun_equals_an_uninterrupted_one(
    clean: tuple[Path, Path, Path, float, float], tmp_path: Path, jobs_done: int
) -> None:
    """Killed in the first epoch of the first job, or after 3 or 7 of its 10 jobs, as the
    next one has saved an epoch (its last.pt)."""
    zoo_file, store, reference, _, _ = clean
    run = tmp_path / "run"
    args = ("zoo", str(zoo_file), "--store", str(store), "--out", str(run))
    if jobs_done:
        _kill_when(run, "*/fold*/done.json", jobs_done, *args)
        _kill_when(run, "*/fold*/last.pt", jobs_done + 1, *args)
    else:
        _kill_when(run, "*/fold*", 1, *args)
    _finish(*args)
    for model in ZOO["models"]:
        _same_predictions(run / model / "oof", reference / model / "oof")


@pytest.mark.parametrize("pattern", ["ensemble/features", "ensemble/fold0/done.json",
                                     "ensemble/fold2/done.json"])
def test_a_stack_killed_and_rerun_equals_an_uninterrupted_one(
    clean: tuple[Path, Path, Path, float, float], tmp_path: Path, pattern: str
) -> None:
    _, _, reference, _, _ = clean
    run = tmp_path / "run"
    shutil.copytree(reference, run, ignore=shutil.ignore_patterns("ensemble", ".lock"))
    _kill_when(run, pattern, 1, "stack", str(run))
    _finish("stack", str(run))
    _same_predictions(run / "ensemble" / "oof", reference / "ensemble" / "oof")
