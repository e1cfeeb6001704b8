"""Values that used to change silently, or fail late or with a traceback: each is now
refused where it is found, with the file, the record and the fault named."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.test_ingest import _shard, _video
from tests.test_ingest_resume import assert_same_store
from yt8mkit.cli.main import app
from yt8mkit.data.example import encode_example
from yt8mkit.data.folds import write_folds
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.store import DamagedStoreError, Store, partial_path
from yt8mkit.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]
CFG = IngestConfig(workers=1)


def _record(vid: bytes = b"v", labels: list[int] | None = None, rgb: np.ndarray | None = None
            ) -> bytes:
    return encode_example({
        "id": vid,
        "labels": np.array([1] if labels is None else labels, np.int64),
        "mean_rgb": np.full(8, 0.5, np.float32) if rgb is None else rgb,
        "mean_audio": np.zeros(4, np.float32),
    })


def _ingest_one_bad(tmp_path: Path, bad: bytes, config: IngestConfig = CFG) -> Path:
    """A shard of good records with ``bad`` as its record 2; ingested."""
    records = [_record(f"g{i}".encode()) for i in range(4)]
    records.insert(2, bad)
    src = _shard(tmp_path / "in.tfrecord", records)
    ingest([src], tmp_path / "s", config)
    return src


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("label", [2**31, 2**32 + 1, 2**31 - 1, 2**63 - 1])
def test_labels_beyond_int32_are_refused_not_wrapped(tmp_path: Path, label: int) -> None:
    with pytest.raises(BadInputError, match=rf"record 2: label id {label} out of range"):
        _ingest_one_bad(tmp_path, _record(b"x", [3, label]))
    assert not (tmp_path / "s").exists()


def test_largest_label_that_fits_is_kept(tmp_path: Path) -> None:
    _ingest_one_bad(tmp_path, _record(b"x", [2**31 - 2]))
    store = Store(tmp_path / "s")
    assert store.labels_of(2).tolist() == [2**31 - 2] and store.num_classes == 2**31 - 1


# ---------------------------------------------------------------- float16 range


@pytest.mark.parametrize("value", [65520.0, -70000.0, 3.0e38])
def test_finite_values_beyond_float16_are_refused_in_a_float16_store(
    tmp_path: Path, value: float
) -> None:
    rgb = np.full(8, 0.5, np.float32)
    rgb[5] = value
    with pytest.raises(BadInputError, match=r"record 2: feature 'mean_rgb' holds .*float16"):
        _ingest_one_bad(tmp_path, _record(b"x", rgb=rgb))


def test_float16_boundary_and_float32_store_keep_large_values(tmp_path: Path) -> None:
    rgb = np.full(8, 65519.0, np.float32)  # rounds to 65504: representable
    _ingest_one_bad(tmp_path, _record(b"x", rgb=rgb))
    assert np.isfinite(Store(tmp_path / "s").video_batch(slice(0, 5))["rgb"]).all()
    big = np.full(8, 1e30, np.float32)
    (tmp_path / "in.tfrecord").unlink()
    src = _shard(tmp_path / "in.tfrecord", [_record(b"a", rgb=big)])
    ingest([src], tmp_path / "s32", IngestConfig(workers=1, video_dtype="float32"))
    assert Store(tmp_path / "s32").video_batch(slice(0, 1))["rgb"][0, 0] == np.float32(1e30)


def test_skip_corrupt_lists_the_float16_overflow(tmp_path: Path) -> None:
    rgb = np.full(8, 1e6, np.float32)
    _ingest_one_bad(tmp_path, _record(b"x", rgb=rgb), IngestConfig(workers=1,
                                                                   skip_corrupt=True))
    meta = Store(tmp_path / "s").meta
    assert meta.num_videos == 4 and [s.record for s in meta.skipped] == [2]
    assert "float16" in meta.skipped[0].what


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize("vid,what", [
    (b"", "empty"), (b"a b", "whitespace"), (b" ab", "whitespace"), (b"ab\n", "whitespace"),
    (b"a,b", "comma"), (b"a\x00b", "control"), (b"\xff\xfe", "not UTF-8"),
    (b"a\xc3", "not UTF-8"), ("a\u00a0b".encode(), "whitespace"),
])
def test_bad_ids_are_refused_at_ingest(tmp_path: Path, vid: bytes, what: str) -> None:
    with pytest.raises(BadInputError, match=f"record 2: video id .*{what}"):
        _ingest_one_bad(tmp_path, _record(vid))


def test_two_non_utf8_ids_no_longer_become_one(tmp_path: Path) -> None:
    records = [_record(b"\xff1"), _record(b"\xfe1"), _record(b"ok")]
    src = _shard(tmp_path / "in.tfrecord", records)
    meta = ingest([src], tmp_path / "s", IngestConfig(workers=1, skip_corrupt=True))
    assert meta.num_videos == 1 and [s.record for s in meta.skipped] == [0, 1]


def test_ids_split_across_utf8_characters_are_each_checked(tmp_path: Path) -> None:
    """"a\\xc3" then "\\xa9b": together valid UTF-8, each alone not."""
    records = [_record(b"a\xc3"), _record(b"\xa9b"), _record("é".encode())]
    src = _shard(tmp_path / "in.tfrecord", records)
    meta = ingest([src], tmp_path / "s", IngestConfig(workers=1, skip_corrupt=True))
    assert Store(tmp_path / "s").ids() == ["é"] and len(meta.skipped) == 2


# ---------------------------------------------------------------- empty features


@pytest.mark.parametrize("where", [0, 2])
def test_an_empty_feature_is_a_record_fault_not_a_traceback(tmp_path: Path, where: int) -> None:
    records = [_record(f"g{i}".encode()) for i in range(3)]
    records[where] = _record(b"e", rgb=np.zeros(0, np.float32))
    src = _shard(tmp_path / "in.tfrecord", records)
    with pytest.raises(BadInputError, match=f"record {where}: feature 'mean_rgb' is empty"):
        ingest([src], tmp_path / "s", CFG)
    assert not (tmp_path / "s").exists() and not partial_path(tmp_path / "s").exists()
    meta = ingest([src], tmp_path / "k", IngestConfig(workers=1, skip_corrupt=True))
    assert meta.num_videos == 2 and meta.dims == {"rgb": 8, "audio": 4}


# ---------------------------------------------------------------- damaged stores


def _store(tmp_path: Path) -> Path:
    src = _shard(tmp_path / "in.tfrecord", [_video(f"v{i}") for i in range(10)])
    ingest([src], tmp_path / "s", CFG)
    return tmp_path / "s"


def test_truncated_folds_are_detected(tmp_path: Path) -> None:
    store = Store(_store(tmp_path))
    write_folds(store, 5)
    path = store.path / "folds.bin"
    path.write_bytes(path.read_bytes()[:7])
    with pytest.raises(DamagedStoreError, match="7 folds for 10 videos"):
        Store(store.path).folds()


@pytest.mark.parametrize("damage", ["missing", "short", "garbage_meta", "negative_dims"])
def test_damaged_stores_give_a_clear_error(tmp_path: Path, damage: str) -> None:
    path = _store(tmp_path)
    if damage == "missing":
        (path / "video" / "rgb.bin").unlink()
    elif damage == "short":
        with open(path / "video" / "rgb.bin", "r+b") as f:
            f.truncate(10)
    elif damage == "garbage_meta":
        (path / "meta.json").write_bytes(b"\x00{not json")
    else:
        text = (path / "meta.json").read_text().replace('"rgb": 8', '"rgb": -8')
        (path / "meta.json").write_text(text)
    with pytest.raises(DamagedStoreError, match=r"rgb\.bin|meta\.json"):
        Store(path).video_batch(slice(0, 2))
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output


# ---------------------------------------------------------------- write failures


def _limited_ingest(sources: list[Path], out: Path, limit: int) -> subprocess.CompletedProcess:
    """``yt8m ingest`` in a child whose files may not grow beyond ``limit`` bytes
    (RLIMIT_FSIZE: a full disk, without needing one)."""

    def limit_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "yt8mkit.cli.main", "ingest", *map(str, sources), "--out",
         str(out), "--workers", "1", "--folds", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, preexec_fn=limit_size)


def test_a_full_disk_is_a_clear_error_and_the_rerun_gives_the_clean_store(
    tmp_path: Path,
) -> None:
    sources = [_shard(tmp_path / f"in{f}.tfrecord",
                      [_video(f"v{f}_{i}", rgb_dim=256) for i in range(40)]) for f in range(4)]
    out = tmp_path / "s"
    # Each file adds 40 rows of 512 bytes to rgb.bin: the limit stops it in the third.
    done = _limited_ingest(sources, out, 50_000)
    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert "File too large" in said and "resumes" in said
    assert "Traceback" not in done.stdout + done.stderr
    assert not out.exists() and partial_path(out).exists()
    ingest(sources, out, CFG)
    ingest(sources, tmp_path / "clean", CFG)
    assert_same_store(out, tmp_path / "clean")


# ---------------------------------------------------------------- commands: errors, not tracebacks


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize("kind", ["missing", "folder", "list", "bad_yaml"])
def test_train_with_a_bad_config_file_is_a_clear_error(tmp_path: Path, kind: str) -> None:
    config = {"missing": tmp_path / "none.yaml", "folder": tmp_path,
              "list": tmp_path / "list.yaml", "bad_yaml": tmp_path / "bad.yaml"}[kind]
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    code, output = _cli("train", str(config), "--store", str(tmp_path),
                        "--out", str(tmp_path / "run"))
    assert code == 1 and str(config.name) in output
    assert {"missing": "no such file", "folder": "is a folder", "list": "YAML mapping",
            "bad_yaml": "not valid YAML"}[kind] in output


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_evaluate_with_a_missing_or_folder_submission_is_a_clear_error(
    tmp_path: Path, kind: str
) -> None:
    store = _store(tmp_path)
    submission = tmp_path / "none.csv" if kind == "missing" else tmp_path
    code, output = _cli("evaluate", str(submission), "--labels", str(store))
    assert code == 1 and {"missing": "no such file", "folder": "is a folder"}[kind] in output


def test_predict_refuses_a_batch_size_below_one(tmp_path: Path) -> None:
    store = _store(tmp_path)
    code, output = _cli("predict", str(tmp_path / "m.onnx"), str(store), "--out",
                        str(tmp_path / "sub.csv"), "--batch-size", "-5")
    assert code == 2 and "batch-size" in output
    assert not (tmp_path / "sub.csv").exists()


# ---------------------------------------------------------------- --skip-corrupt skips


def _arrays(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes()
            for p in sorted(path.rglob("*.bin")) if p.name != "folds.bin"}


@pytest.mark.parametrize("level", ["video", "frame"])
def test_skip_corrupt_skips_duplicate_ids_and_keeps_the_rest_exactly(
    tmp_path: Path, level: str
) -> None:
    from tests.test_ingest_resume import _frames_video

    rng = np.random.default_rng(3)

    def record(vid: str) -> bytes:
        if level == "frame":
            return _frames_video(vid, 2 + len(vid) % 3, rng)
        return _video(vid, labels=(len(vid), 7))

    files = [["a", "b", "a", "c"], ["d", "b", "e"], ["f", "f", "f", "g"]]
    payloads = [[record(v) for v in names] for names in files]
    with_dups = [_shard(tmp_path / f"in{i}.tfrecord", p) for i, p in enumerate(payloads)]
    seen: set[str] = set()
    clean_payloads = []
    for names, recs in zip(files, payloads):
        kept = []
        for v, r in zip(names, recs):
            if v not in seen:
                seen.add(v)
                kept.append(r)
        clean_payloads.append(kept)
    (tmp_path / "clean").mkdir()
    clean = [_shard(tmp_path / "clean" / f"in{i}.tfrecord", p)
             for i, p in enumerate(clean_payloads)]
    config = IngestConfig(workers=2, skip_corrupt=True)
    meta = ingest(with_dups, tmp_path / "s", config)
    want = ingest(clean, tmp_path / "w", config)
    assert _arrays(tmp_path / "s") == _arrays(tmp_path / "w")
    assert (meta.num_videos, meta.num_labels, meta.num_frames, meta.num_classes) == (
        want.num_videos, want.num_labels, want.num_frames, want.num_classes)
    where = [(Path(s.path).name, s.record) for s in meta.skipped]
    assert where == [("in0.tfrecord", 2), ("in1.tfrecord", 1), ("in2.tfrecord", 1),
                     ("in2.tfrecord", 2)]
    assert "first seen in" in meta.skipped[1].what and "in0.tfrecord, record 1" in (
        meta.skipped[1].what)
    assert Store(tmp_path / "s").ids() == ["a", "b", "c", "d", "e", "f", "g"]


def test_a_bad_first_record_does_not_set_the_file_s_widths(tmp_path: Path) -> None:
    records = [_record(b"odd", rgb=np.ones(7, np.float32))]
    records += [_record(f"g{i}".encode()) for i in range(5)]
    src = _shard(tmp_path / "in.tfrecord", records)
    with pytest.raises(BadInputError, match=r"record 0: feature 'mean_rgb' has 7 values"):
        ingest([src], tmp_path / "s", CFG)
    meta = ingest([src], tmp_path / "k", IngestConfig(workers=1, skip_corrupt=True))
    assert meta.num_videos == 5 and meta.dims["rgb"] == 8
    assert [s.record for s in meta.skipped] == [0]


def test_a_stray_sequence_example_first_does_not_make_the_file_frame_level(
    tmp_path: Path,
) -> None:
    from tests.test_ingest_resume import _frames_video

    records = [_frames_video("stray", 3, np.random.default_rng(0))]
    records += [_record(f"g{i}".encode()) for i in range(5)]
    src = _shard(tmp_path / "in.tfrecord", records)
    meta = ingest([src], tmp_path / "k", IngestConfig(workers=1, skip_corrupt=True))
    assert meta.level == "video" and meta.num_videos == 5
    assert [s.record for s in meta.skipped] == [0]
    with pytest.raises(BadInputError, match="record 0"):
        ingest([src], tmp_path / "s", CFG)
