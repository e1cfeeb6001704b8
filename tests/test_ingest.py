"""Ingest into a store: real files, every bad-input case (clear message, nothing left
behind), skip-corrupt, resume after an interruption, folds, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.pb_reference import parse_example
from yt8mkit.cli.main import app
from yt8mkit.data.example import encode_example, encode_sequence_example
from yt8mkit.data.folds import assign_folds, write_folds
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.shard import pack_ids
from yt8mkit.data.sources import resolve_sources, resolved_paths
from yt8mkit.data.store import Store, first_duplicate, partial_path
from yt8mkit.data.tfrecord import TFRecordWriter, iter_records
from yt8mkit.errors import BadInputError

RNG = np.random.default_rng(0)


def _video(vid: str, labels=(1, 2), rgb_dim: int = 8, audio_dim: int = 4, **override) -> bytes:
    features = {
        "id": vid.encode(),
        "labels": np.array(labels, np.int64),
        "mean_rgb": RNG.normal(size=rgb_dim).astype(np.float32),
        "mean_audio": RNG.normal(size=audio_dim).astype(np.float32),
    }
    features.update(override)
    return encode_example({k: v for k, v in features.items() if v is not None})


def _shard(path: Path, payloads: list[bytes]) -> Path:
    with TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    return path


def _good_shards(folder: Path, files: int = 3, per_file: int = 4) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        _shard(folder / f"s{f}.tfrecord", [_video(f"v{f}_{i}") for i in range(per_file)])
        for f in range(files)
    ]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not partial_path(out).exists()


CFG = IngestConfig(workers=1)


# ---------------------------------------------------------------- real data


def test_ingest_smoke_store_matches_records(smoke_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    meta = ingest(
        [smoke_dir], out, IngestConfig(workers=2, num_classes=3862, video_dtype="float32")
    )
    store = Store(out)
    assert meta.num_videos == 1691 + 312 + 305
    assert meta.num_unlabelled == 305
    assert store.dims == {"rgb": 1024, "audio": 128}
    assert store.num_classes == 3862
    files = sorted(smoke_dir.glob("*.tfrecord"))
    ids = store.ids()
    index = 0
    for path in files:
        for i, payload in enumerate(iter_records(path)):
            if i % 50 == 0:
                ref = parse_example(payload).features.feature
                assert ids[index] == ref["id"].bytes_list.value[0].decode()
                expected = list(ref["labels"].int64_list.value) if "labels" in ref else []
                assert store.labels_of(index).tolist() == expected
                assert bool(store.labelled[index]) == ("labels" in ref)
                rgb = np.array(ref["mean_rgb"].float_list.value, np.float32)
                np.testing.assert_array_equal(store.video_batch([index])["rgb"][0], rgb)
            index += 1
    assert index == meta.num_videos
    dense = store.labels_dense(np.array([0, 5, 400]))
    for row, video in enumerate([0, 5, 400]):
        assert set(np.flatnonzero(dense[row])) == set(store.labels_of(video).tolist())


def test_float16_store_is_close(smoke_dir: Path, tmp_path: Path) -> None:
    source = smoke_dir / "validate00.tfrecord"
    ingest([source], tmp_path / "f16", CFG)
    ingest([source], tmp_path / "f32", IngestConfig(workers=1, video_dtype="float32"))
    a = Store(tmp_path / "f16").video_batch(slice(0, 312))["rgb"]
    b = Store(tmp_path / "f32").video_batch(slice(0, 312))["rgb"]
    assert np.abs(a - b).max() < 2e-3 and Store(tmp_path / "f16").meta.video_dtype == "float16"


def test_ingest_frame_level(frame_format_dir: Path, tmp_path: Path) -> None:
    meta = ingest([frame_format_dir], tmp_path / "frames", CFG)
    store = Store(tmp_path / "frames")
    assert meta.level == "frame" and meta.num_frames == 184 + 141
    assert store.frame_counts().tolist() == [184, 141]
    frames = store.video_frames(1)
    assert frames["rgb"].shape == (141, 1024)
    # Video-level features of a frame-level store are the mean of the dequantized frames.
    np.testing.assert_allclose(
        store.video_batch([1])["audio"][0], frames["audio"].mean(axis=0), atol=2e-3
    )


def test_2017_video_id_key(tmp_path: Path) -> None:
    payload = _video("x", labels=(4715,))
    legacy = encode_example(
        {
            "video_id": b"legacy",
            "labels": np.array([4715], np.int64),
            "mean_rgb": np.zeros(8, np.float32),
            "mean_audio": np.zeros(4, np.float32),
        }
    )
    src = _shard(tmp_path / "a.tfrecord", [payload, legacy])
    meta = ingest([src], tmp_path / "s", IngestConfig(workers=1, num_classes=4716))
    assert meta.num_classes == 4716 and Store(tmp_path / "s").ids() == ["x", "legacy"]


# ---------------------------------------------------------------- bad input


def _corrupt(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _record_start(path: Path, index: int) -> int:
    import struct

    data = path.read_bytes()
    offset = 0
    for _ in range(index):
        offset += 16 + struct.unpack_from("<Q", data, offset)[0]
    return offset


@pytest.mark.parametrize(
    ("make", "message", "record"),
    [
        ("bad_data_crc", "bad data CRC", 2),
        ("bad_length_crc", "bad length CRC", 2),
        ("truncated", "truncated record", 3),
        ("not_tfrecord", "not a TFRecord file", None),
        ("wrong_length", "feature 'mean_rgb' has 7 values, expected 8", 1),
        ("nan", "feature 'mean_audio' holds NaN or Inf", 2),
        ("inf", "feature 'mean_rgb' holds NaN or Inf", 2),
        ("label_range", "label id 99 out of range [0, 50)", 1),
        ("negative_label", "label id -3 out of range (negative)", 1),
        ("missing_feature", "feature 'mean_audio' is missing", 0),
        ("no_id", "no video id", 3),
    ],
)
def test_bad_input_names_file_record_and_fault(
    tmp_path: Path, make: str, message: str, record: int | None
) -> None:
    shards = _good_shards(tmp_path / "in", files=2)
    bad = shards[1]
    payloads = [_video(f"b{i}") for i in range(4)]
    if make == "wrong_length":
        payloads[1] = _video("b1", mean_rgb=np.zeros(7, np.float32))
    elif make == "nan":
        payloads[2] = _video("b2", mean_audio=np.array([0, np.nan, 0, 0], np.float32))
    elif make == "inf":
        payloads[2] = _video("b2", mean_rgb=np.full(8, np.inf, np.float32))
    elif make == "label_range":
        payloads[1] = _video("b1", labels=(3, 99))
    elif make == "negative_label":
        payloads[1] = _video("b1", labels=(-3,))
    elif make == "missing_feature":
        payloads[0] = _video("b0", mean_audio=None)
    elif make == "no_id":
        payloads[3] = _video("b3", id=None)
    _shard(bad, payloads)
    if make == "bad_data_crc":
        _corrupt(bad, _record_start(bad, 2) + 20)
    elif make == "bad_length_crc":
        _corrupt(bad, _record_start(bad, 2) + 1)
    elif make == "truncated":
        bad.write_bytes(bad.read_bytes()[: _record_start(bad, 3) + 30])
    elif make == "not_tfrecord":
        bad.write_bytes(b"VideoId,LabelConfidencePairs\nabc,1 0.5\n" * 3)
    out = tmp_path / "store"
    with pytest.raises(BadInputError) as info:
        ingest(shards, out, IngestConfig(workers=1, num_classes=50))
    err = info.value
    assert err.path == str(bad)
    assert message in str(err)
    assert err.record == record
    if record is not None:
        assert f"record {record}" in str(err)
    _assert_nothing_written(out)


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.tfrecord", [_video("x1"), _video("dup"), _video("x2")])
    b = _shard(tmp_path / "b.tfrecord", [_video("y1"), _video("y2"), _video("dup")])
    with pytest.raises(BadInputError) as info:
        ingest([a, b], tmp_path / "s", CFG)
    assert info.value.path == str(b.resolve()) and info.value.record == 2
    assert "duplicate video id 'dup'" in str(info.value) and f"{a.resolve()}, record 1" in str(
        info.value
    )
    _assert_nothing_written(tmp_path / "s")


def test_duplicate_id_within_file(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.tfrecord", [_video("x1"), _video("x2"), _video("x1")])
    with pytest.raises(BadInputError, match=r"record 2: duplicate video id 'x1'") as info:
        ingest([a], tmp_path / "s", CFG)
    assert f"first seen in {a.resolve()}, record 0" in str(info.value)
    _assert_nothing_written(tmp_path / "s")


def test_first_duplicate_compares_whole_ids() -> None:
    # Prefixes, trailing zero bytes and empty ids are different ids; a slice of a
    # larger blob (offsets not from 0) works as well.
    def first(ids: list[bytes], pad: int = 0) -> tuple[int, int] | None:
        blob, offsets = pack_ids(ids)
        return first_duplicate(np.concatenate([np.ones(pad, np.uint8), blob]), offsets + pad)

    distinct = [b"ab", b"ab\x00", b"a", b"", b"\x00", b"ba", b"b" * 300]
    assert first(distinct) is None and first(distinct, pad=5) is None
    assert first([*distinct, b"ab\x00"]) == (1, 7)
    assert first([b"", b"x", b""], pad=3) == (0, 2)
    assert first([b"only"]) is None and first([]) is None
    assert first([bytes(256), bytes(65792)]) is None  # lengths equal in their low 2 bytes
    # The earliest record that repeats an id, with the first record of that id.
    assert first([b"c", b"b", b"a", b"a", b"b", b"c", b"a"], pad=2) == (2, 3)
    assert first([b"x" * 9, b"y", b"x" * 9 + b"\x00", b"y"]) == (1, 3)


def test_first_duplicate_equals_a_python_set_on_random_ids() -> None:
    rng = np.random.default_rng(2)
    outcomes = set()
    for trial in range(30):
        n, alphabet = int(rng.integers(2, 300)), (3, 256)[trial % 2]
        sizes = rng.integers(0 if alphabet == 3 else 3, 20, n)
        if trial % 3 == 0:  # one length for all, as in YouTube-8M
            sizes[:] = sizes[0]
        ids = [bytes(rng.integers(0, alphabet, size).astype(np.uint8)) for size in sizes]
        seen: dict[bytes, int] = {}
        expected = None
        for i, vid in enumerate(ids):
            if vid in seen:
                expected = (seen[vid], i)
                break
            seen[vid] = i
        blob, offsets = pack_ids(ids)
        assert first_duplicate(blob, offsets) == expected, trial
        outcomes.add(expected is None)
    assert outcomes == {True, False}


def test_resolved_paths_equal_pathlib_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Links to a folder and to a file, "..", a link followed by "..", relative paths.
    (tmp_path / "real" / "deep").mkdir(parents=True)
    for name in ("a.tfrecord", "b.tfrecord"):
        (tmp_path / "real" / name).write_bytes(b"")
    (tmp_path / "folder_link").symlink_to(tmp_path / "real" / "deep")
    (tmp_path / "file_link.tfrecord").symlink_to(tmp_path / "real" / "b.tfrecord")
    monkeypatch.chdir(tmp_path / "real")
    files = [
        "a.tfrecord",
        "../real/b.tfrecord",
        str(tmp_path / "folder_link" / ".." / "a.tfrecord"),
        str(tmp_path / "file_link.tfrecord"),
        str(tmp_path / "real" / "deep" / ".." / "a.tfrecord"),
    ]
    assert resolved_paths(files) == [str(Path(f).resolve()) for f in files]
    with pytest.raises(BadInputError, match=r"file_link\.tfrecord: file given more than once"):
        resolve_sources(["b.tfrecord", str(tmp_path / "file_link.tfrecord")])


@pytest.mark.parametrize("kind", ["empty_file", "empty_folder", "missing"])
def test_empty_input(tmp_path: Path, kind: str) -> None:
    if kind == "empty_file":
        source = tmp_path / "e.tfrecord"
        source.write_bytes(b"")
        match = "empty input"
    elif kind == "empty_folder":
        source = tmp_path / "folder"
        source.mkdir()
        match = "folder holds no .tfrecord files"
    else:
        source = tmp_path / "nothing.tfrecord"
        match = "no such file"
    with pytest.raises(BadInputError, match=match):
        ingest([source], tmp_path / "s", CFG)
    _assert_nothing_written(tmp_path / "s")


def test_mixed_dimensions_across_files(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a.tfrecord", [_video("a")])
    b = _shard(tmp_path / "b.tfrecord", [_video("b", rgb_dim=16)])
    with pytest.raises(BadInputError, match="feature dimensions"):
        ingest([a, b], tmp_path / "s", CFG)
    _assert_nothing_written(tmp_path / "s")


def test_skip_corrupt_counts_and_lists(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in", files=2)
    _shard(shards[1], [_video("c0"), _video("c1", labels=(-1,)), _video("c2"), _video("c3")])
    _corrupt(shards[1], _record_start(shards[1], 2) + 20)
    meta = ingest(shards, tmp_path / "s", IngestConfig(workers=1, skip_corrupt=True))
    assert meta.num_videos == 4 + 2
    skipped = sorted((s.record, s.what.split(" (")[0], s.path) for s in meta.skipped)
    assert skipped == [
        (1, "label id -1 out of range", str(shards[1])),
        (2, "bad data CRC", str(shards[1])),
    ]
    assert Store(tmp_path / "s").ids()[-2:] == ["c0", "c3"]
    on_disk = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert len(on_disk["skipped"]) == 2


# ---------------------------------------------------------------- resume


def test_resume_after_interruption_equals_fresh_ingest(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in", files=5, per_file=3)
    out = tmp_path / "s"
    seen: list[int] = []

    def crash_after_two(path: str, n: int, done: int) -> None:
        seen.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(shards, out, CFG, progress=crash_after_two)
    assert partial_path(out).exists() and not out.exists()
    resumed: list[str] = []
    ingest(shards, out, CFG, progress=lambda path, n, done: resumed.append(path))
    assert resumed == [str(p) for p in shards[2:]]  # the first two were not decoded again
    ingest(shards, tmp_path / "fresh", CFG)
    for name in (
        "ids.bin",
        "ids_offsets.bin",
        "video/rgb.bin",
        "labels_indptr.bin",
        "labels_indices.bin",
    ):
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name


def test_resume_refuses_other_inputs(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in", files=3)
    out = tmp_path / "s"

    def crash(path: str, n: int, done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(shards, out, CFG, progress=crash)
    meta = ingest(shards[:2], out, CFG)  # other inputs: starts over, does not mix
    assert meta.num_videos == 8


# ---------------------------------------------------------------- folds


def test_folds_balanced_seeded_and_order_free() -> None:
    ids = [f"vid{i:05d}" for i in range(1003)]
    folds = assign_folds(ids, 5, seed=7)
    assert sorted(np.bincount(folds).tolist()) == [200, 200, 201, 201, 201]
    shuffled = list(reversed(ids))
    again = assign_folds(shuffled, 5, seed=7)
    assert dict(zip(shuffled, again.tolist())) == dict(zip(ids, folds.tolist()))
    assert (assign_folds(ids, 5, seed=8) != folds).mean() > 0.5
    # The same on every machine: a pinned value (blake2b of the id keyed by the seed).
    assert assign_folds(["a", "b", "c", "d", "e"], 5, seed=0).tolist() == PINNED_FOLDS


PINNED_FOLDS = [1, 3, 4, 0, 2]


def test_write_folds_saved_with_store(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in", files=2, per_file=10)
    ingest(shards, tmp_path / "s", CFG)
    store = Store(tmp_path / "s")
    folds = write_folds(store, 5, seed=3)
    np.testing.assert_array_equal(store.folds(), folds)
    assert json.loads((tmp_path / "s" / "folds.json").read_text())["sizes"] == [4] * 5


# ---------------------------------------------------------------- CLI


def test_cli_ingest_and_info(tmp_path: Path) -> None:
    _good_shards(tmp_path / "in", files=2, per_file=5)
    runner = CliRunner()
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "in"), "--out", str(tmp_path / "s"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "10 videos" in result.output
    result = runner.invoke(app, ["info", str(tmp_path / "s")])
    assert result.exit_code == 0 and "rgb=8, audio=4" in result.output
    result = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "t")])
    assert result.exit_code == 1 and "no such file or folder" in result.output


def test_parallel_ingest_equals_serial(tmp_path: Path) -> None:
    shards = _good_shards(tmp_path / "in", files=6, per_file=5)
    ingest(shards, tmp_path / "one", CFG)
    ingest(shards, tmp_path / "two", IngestConfig(workers=2))
    for name in ("ids.bin", "video/audio.bin", "labels_indices.bin"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_frame_level_bad_frames(tmp_path: Path) -> None:
    good = encode_sequence_example(
        {"id": b"f0", "labels": [1]},
        {"rgb": np.zeros((5, 8), np.uint8), "audio": np.zeros((5, 4), np.uint8)},
    )
    uneven = encode_sequence_example(
        {"id": b"f1", "labels": [1]},
        {"rgb": np.zeros((5, 8), np.uint8), "audio": np.zeros((4, 4), np.uint8)},
    )
    src = _shard(tmp_path / "f.tfrecord", [good, uneven])
    with pytest.raises(BadInputError, match=r"record 1: feature lists have different frame counts"):
        ingest([src], tmp_path / "s", CFG)
    _assert_nothing_written(tmp_path / "s")
    shutil.rmtree(tmp_path / "s", ignore_errors=True)
