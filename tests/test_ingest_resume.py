"""Resume, the one rule: an ingest killed (SIGKILL, in a child process) at any point
and run again gives the store a clean ingest gives, array for array.

Kill points: inside a write to each array file (part of its bytes written), inside a
journal line, around the move into place, and at random times of a real ingest of
``smoke/`` (the first half second, while Python starts, included). One to three kills
before the run that completes. ``YT8M_KILL_TRIALS`` raises the number of trials
(RELIABILITY.md gives the command and the counts of a longer run).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_ingest import _shard, _video
from yt8mkit.data import store as store_module
from yt8mkit.data.example import encode_example, encode_sequence_example
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.store import partial_path

ROOT = Path(__file__).resolve().parents[1]
TRIALS = int(os.environ.get("YT8M_KILL_TRIALS", "0"))


def _frames_video(vid: str, n: int, rng: np.random.Generator) -> bytes:
    return encode_sequence_example(
        {"id": vid.encode(), "labels": np.array([1, 3], np.int64)},
        {"rgb": rng.integers(0, 256, (n, 8), np.uint8),
         "audio": rng.integers(0, 256, (n, 4), np.uint8)},
    )


def _unlabelled(vid: str) -> bytes:
    return encode_example({"id": vid.encode(), "mean_rgb": np.ones(8, np.float32),
                           "mean_audio": np.zeros(4, np.float32)})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("kill_inputs")
    (root / "video").mkdir()
    (root / "frame").mkdir()
    video = [
        _shard(root / "video" / f"v{f}.tfrecord",
               [_video(f"v{f}_{i}", labels=(i % 7, 7 + f)) for i in range(n)]
               + ([_unlabelled(f"u{f}")] if f == 2 else []))
        for f, n in enumerate([17, 3, 40, 1, 25])
    ]
    rng = np.random.default_rng(1)
    frame = [
        _shard(root / "frame" / f"f{f}.tfrecord",
               [_frames_video(f"f{f}_{i}", 2 + i, rng) for i in range(3)])
        for f in range(3)
    ]
    return {"video": video, "frame": frame}


def _child(out: Path, sources: list[Path], at: str = "none", fraction: float = 0.0,
           workers: int = 1, float32: bool = False, kill_after: float | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.ingest_killer", str(out), str(workers),
            "1" if float32 else "0", at, str(fraction), *map(str, sources)]
    child = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    if kill_after is not None:
        try:
            child.wait(kill_after)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
    _, err = child.communicate()
    if child.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"ingest child failed ({child.returncode}): {err.decode()}")
    return child.returncode


def _store_files(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*")) if p.is_file()}


def assert_same_store(got: Path, want: Path) -> None:
    a, b = _store_files(got), _store_files(want)
    assert sorted(a) == sorted(b)
    for name in a:
        if name == "meta.json":
            assert json.loads(a[name]) == json.loads(b[name])
        else:
            assert a[name] == b[name], f"{name} differs"
    assert not partial_path(got).exists()


def _count_appends(sources: list[Path], out: Path, config: IngestConfig) -> int:
    calls = {"n": 0}
    original = store_module.StoreWriter._append

    def counting(self: store_module.StoreWriter, name: str, data: object) -> None:
        calls["n"] += 1
        original(self, name, data)  # type: ignore[arg-type]

    store_module.StoreWriter._append = counting  # type: ignore[method-assign]
    try:
        ingest(sources, out, config)
    finally:
        store_module.StoreWriter._append = original  # type: ignore[method-assign]
    return calls["n"]


def _kill_plan(rng: random.Random, appends: int, files: int) -> list[tuple[str, float]]:
    """One to three kill points, each at a write, in a journal line or at the move."""
    plan = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        kind = rng.choice(["append"] * 6 + ["journal"] * 2 + ["finish"])
        if kind == "append":
            plan.append((f"append:{rng.randint(1, appends)}", rng.random()))
        elif kind == "journal":
            plan.append((f"journal:{rng.randint(1, files)}", rng.random()))
        else:
            plan.append(("finish", rng.random()))
    return plan


@pytest.mark.parametrize("level,float32,trials", [("video", False, 10), ("frame", True, 5)])
def test_kill_at_write_points_then_resume_equals_clean_ingest(
    inputs: dict[str, list[Path]], tmp_path: Path, level: str, float32: bool, trials: int
) -> None:
    sources = inputs[level]
    config = IngestConfig(workers=1, video_dtype="float32" if float32 else "float16")
    clean = tmp_path / "clean"
    appends = _count_appends(sources, clean, config)
    rng = random.Random(f"{level}{TRIALS}")
    killed = 0
    points: dict[str, int] = {}
    for trial in range(max(trials, TRIALS)):
        out = tmp_path / f"t{trial}"
        for at, fraction in _kill_plan(rng, appends, len(sources)):
            code = _child(out, sources, at, fraction, float32=float32)
            killed += code == -signal.SIGKILL
            points[at.partition(":")[0]] = points.get(at.partition(":")[0], 0) + 1
        ingest(sources, out, config)
        assert_same_store(out, clean)
    assert killed >= max(trials, TRIALS)  # every trial did kill a writer
    print(f"\n{level}-level: {max(trials, TRIALS)} trials, {killed} kills {points}, "
          f"{appends} array writes a clean ingest; every resumed store equal to the clean one")


def test_kill_at_random_times_of_a_real_ingest(smoke_dir: Path, tmp_path: Path) -> None:
    sources = sorted(smoke_dir.glob("*.tfrecord"))
    clean = tmp_path / "clean"
    ingest(sources, clean, IngestConfig(workers=2))
    rng = random.Random(f"time{TRIALS}")
    outcomes = {"killed": 0, "finished": 0}
    for trial in range(max(6, TRIALS)):
        out = tmp_path / f"t{trial}"
        for _ in range(rng.choice([1, 2])):
            # Python's start-up takes about 0.35 s here, the ingest itself about 0.3 s.
            code = _child(out, sources, workers=2, kill_after=rng.uniform(0.0, 0.9))
            outcomes["killed" if code else "finished"] += 1
        ingest(sources, out, IngestConfig(workers=2))
        assert_same_store(out, clean)
    assert outcomes["killed"] >= 1, outcomes
    print(f"\nsmoke/ at random times: {max(6, TRIALS)} trials, {outcomes}; every resumed "
          f"store equal to the clean one")


def test_input_changed_in_place_after_a_kill_is_read_again(
    inputs: dict[str, list[Path]], tmp_path: Path
) -> None:
    """A file already appended, then rewritten in place with the same size and mtime:
    the resume sees it by its digest and reads it again, it does not reuse the rows."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = []
    for path in inputs["video"]:
        sources.append(folder / path.name)
        sources[-1].write_bytes(path.read_bytes())
    out = tmp_path / "out"
    # Killed in the first write of the third file: the first two are journalled whole.
    per_file = 8
    assert _child(out, sources, f"append:{2 * per_file + 1}", 0.5) == -signal.SIGKILL
    target = sources[1]
    stat = target.stat()
    rewritten = tmp_path / "rewritten.tfrecord"
    _shard(rewritten, [_video("v1_0", labels=(5, 6)), _video("v1_1", labels=(2, 4)),
                       _video("v1_2", labels=(3, 4))])
    assert rewritten.stat().st_size == stat.st_size
    target.write_bytes(rewritten.read_bytes())
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ingest(sources, out, IngestConfig(workers=1))
    clean = tmp_path / "clean"
    ingest(sources, clean, IngestConfig(workers=1))
    assert_same_store(out, clean)


def test_stale_arrays_created_after_the_last_journal_line_are_dropped(
    inputs: dict[str, list[Path]], tmp_path: Path
) -> None:
    """The reported bug: a kill in the first file's writes left arrays that the journal
    did not name, and the resume appended to them (stale rows, exit 0)."""
    sources = inputs["video"]
    out = tmp_path / "out"
    assert _child(out, sources, "append:5", 1.0) == -signal.SIGKILL
    assert (partial_path(out) / "video" / "rgb.bin").stat().st_size > 0
    time.sleep(0.01)
    ingest(sources, out, IngestConfig(workers=1))
    clean = tmp_path / "clean"
    ingest(sources, clean, IngestConfig(workers=1))
    assert_same_store(out, clean)
