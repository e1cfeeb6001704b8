"""Outputs never clobber, names from configs are plain names, and one writer at a time
(locks tested with two real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.test_ingest import _good_shards
from yt8mkit.cli.main import app
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.store import Store, partial_path
from yt8mkit.locks import LockedError, acquire, release, store_lock_file
from yt8mkit.outputs import OutputError
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.rundir import LOCK, lock_run_dir
from yt8mkit.train.config import TrainConfig
from yt8mkit.zoo.config import ZooConfig

ROOT = Path(__file__).resolve().parents[1]
CFG = IngestConfig(workers=1)


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- --out never clobbers


def test_out_that_is_another_folder_is_refused_and_left(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in")
    other = tmp_path / "d"
    other.mkdir()
    (other / "thesis.txt").write_text("years of work")
    with pytest.raises(OutputError, match="exists and is not a store"):
        ingest(shards, other, CFG)
    assert _tree(other) == {"thesis.txt": b"years of work"}
    assert not partial_path(other.resolve()).exists()


@pytest.mark.parametrize("where", ["input_folder", "parent", "inside_input", "dotdot"])
def test_out_overlapping_the_inputs_is_refused(tmp_path: Path, where: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "data" / "in"
    _good_shards(folder)
    before = _tree(tmp_path)
    monkeypatch.chdir(folder)
    out = {"input_folder": folder, "parent": tmp_path / "data",
           "inside_input": folder / "store", "dotdot": Path("..")}[where]
    with pytest.raises(OutputError, match="input"):
        ingest([folder], out, CFG)
    assert _tree(tmp_path) == before


def test_out_that_is_a_file_is_a_clear_error_on_the_command_line(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in")
    target = tmp_path / "f"
    target.write_text("keep")
    result = CliRunner().invoke(app, ["ingest", *map(str, shards), "--out", str(target)])
    assert result.exit_code == 1
    assert "is a file" in result.output and "Traceback" not in result.output
    assert target.read_text() == "keep"


def test_a_store_or_an_empty_folder_may_be_replaced(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in", files=3)
    out = tmp_path / "s"
    out.mkdir()
    assert ingest(shards, out, CFG).num_videos == 12
    assert ingest(shards[:1], out, CFG).num_videos == 4  # our own store: replaced
    assert Store(out).num_videos == 4
    assert not any(p.name.endswith(".old") for p in tmp_path.iterdir())


def test_a_partial_folder_that_is_not_ours_is_left(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in")
    out = tmp_path / "s"
    stranger = partial_path(out)
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="not a partial store"):
        ingest(shards, out, CFG)
    assert (stranger / "notes.txt").read_text() == "mine"


def test_run_dir_that_is_another_folder_or_a_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    with pytest.raises(OutputError, match="not a run directory"):
        lock_run_dir(other)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        lock_run_dir(tmp_path / "file")
    assert _tree(other) == {"a.jpg": b"x"}
    lock_run_dir(tmp_path / "new" / "run")  # new or empty: fine
    assert (tmp_path / "new" / "run" / LOCK).is_file()


# ---------------------------------------------------------------- plain names


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "..", ".", "a/b", "a\\b", "", " x"])
def test_names_from_configs_must_be_plain(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        TrainConfig.model_validate({"name": name, "model": {"name": "logistic"}})
    with pytest.raises(ValidationError):
        ZooConfig.model_validate({"models": {name: {"model": {"name": "logistic"}}}})
    with pytest.raises(ValidationError):
        ZooConfig.model_validate({"name": name, "models": {}})
    with pytest.raises(ValidationError):
        PipelineConfig.model_validate({"name": name})


def test_plain_names_still_pass() -> None:
    assert TrainConfig.model_validate({"name": "resnet like_2", "model": {"name": "logistic"}})


# ---------------------------------------------------------------- locks, two processes


def _holder(lock_file: Path) -> subprocess.Popen:
    """A second process that takes the lock, says so, and waits to be killed."""
    code = ("import sys, time; from pathlib import Path; from yt8mkit.locks import acquire;"
            f"acquire(Path({str(lock_file)!r}), 'test'); print('held', flush=True);"
            "time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("YT8M_HELD_LOCKS", None)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                             start_new_session=True)
    assert child.stdout is not None and child.stdout.readline().strip() == b"held"
    return child


def _kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_second_ingest_into_the_same_store_is_refused_naming_the_pid(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in")
    out = tmp_path / "s"
    child = _holder(store_lock_file(out))
    try:
        with pytest.raises(LockedError, match=f"in use by pid {child.pid}"):
            ingest(shards, out, CFG)
        assert not out.exists() and not partial_path(out).exists()
    finally:
        _kill(child)
    # The holder died without releasing: its lock is taken over.
    assert ingest(shards, out, CFG).num_videos == 12


def test_second_writer_of_a_run_directory_is_refused_then_takes_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    child = _holder(run / LOCK)
    try:
        with pytest.raises(LockedError, match=f"in use by pid {child.pid}"):
            lock_run_dir(run)
    finally:
        _kill(child)
    lock_run_dir(run)
    assert (run / LOCK).read_text().strip() == str(os.getpid())


def test_train_command_refuses_a_locked_run_directory(
    tmp_path: Path, small_video_store: tuple[Path, Path]
) -> None:
    config = tmp_path / "m.yaml"
    config.write_text("name: m\nmodel: {name: logistic}\nepochs: 1\n")
    run = tmp_path / "run"
    run.mkdir()
    child = _holder(run / LOCK)
    try:
        result = CliRunner().invoke(app, ["train", str(config), "--store",
                                          str(small_video_store[0]), "--out", str(run)])
    finally:
        _kill(child)
    assert result.exit_code == 1 and f"in use by pid {child.pid}" in result.output
    assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing written


def test_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    lock = tmp_path / "l"
    acquire(lock, "x")
    acquire(lock, "x")
    release(lock)
    child = subprocess.run(
        [sys.executable, "-c", "from pathlib import Path; from yt8mkit.locks import acquire;"
         f"acquire(Path({str(lock)!r}), 'x')"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "YT8M_HELD_LOCKS": ""},
        capture_output=True, text=True)
    assert "in use by pid" in child.stderr  # still held once
    release(lock)


def test_scratch_of_dead_writers_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    from yt8mkit.outputs import _HOST, scratch_dir, scratch_file

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    host = _HOST
    (tmp_path / f".out.csv.{dead_pid}-{host}.abc.partial").write_text("torn")
    (tmp_path / f".model.onnx.{dead_pid}-{host}.xyz").mkdir()
    (tmp_path / f".model.onnx.{dead_pid}-{host}.xyz" / "fp32.onnx").write_text("torn")
    live = [tmp_path / f".out.csv.{os.getppid()}-{host}.def.partial",  # a live process's
            tmp_path / f".out.csv.{dead_pid}-elsewhere.d.partial",    # another machine's
            tmp_path / ".out.csv.old.partial",                        # not named by a pid
            tmp_path / f".other.csv.{dead_pid}-{host}.x.partial"]     # another output's
    for path in live:
        path.write_text("kept")
    fd, made = scratch_file(tmp_path, "out.csv")
    os.close(fd)
    folder = scratch_dir(tmp_path, "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*(p.name for p in live), Path(made).name, folder.name])
    umask = os.umask(0)
    os.umask(umask)
    assert f".{os.getpid()}-{host}." in folder.name  # the permissions of a plain mkdir:
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
