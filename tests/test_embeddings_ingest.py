"""Ingest of one's own embeddings: Parquet (video-level, frames as lists of lists or one
row a frame) and NumPy (.npy folder, .npz stored or compressed) into the same store as
TFRecords, with the same checks, errors and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yt8mkit.data.embedding_ingest import ingest_embeddings
from yt8mkit.data.embeddings import EmbeddingOptions, detect_format
from yt8mkit.data.quantize import quantize
from yt8mkit.data.store import Store, StoreWriter, partial_path
from yt8mkit.errors import BadInputError

REPO = Path(__file__).resolve().parents[1]


def _options(**kw: object) -> EmbeddingOptions:
    return EmbeddingOptions.model_validate({"workers": 2, **kw})


def _labels(rng: np.random.Generator, n: int, classes: int = 6) -> list[list[int] | None]:
    out: list[list[int] | None] = [
        sorted(rng.choice(classes, int(rng.integers(0, 3)), replace=False).tolist())
        for _ in range(n)]
    out[4] = None  # unlabelled
    return out


def _video_data(n: int = 60, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"ids": [f"v{i}" for i in range(n)],
            "clip": rng.normal(size=(n, 8)).astype(np.float32),
            "clap": rng.normal(size=(n, 4)).astype(np.float32),
            "labels": _labels(rng, n)}


def _video_table(d: dict) -> pa.Table:
    return pa.table({
        "id": d["ids"],
        "clip": pa.FixedSizeListArray.from_arrays(pa.array(d["clip"].ravel()), 8),
        "clap": pa.array(list(d["clap"]), pa.list_(pa.float32())),
        "labels": pa.array(d["labels"], pa.list_(pa.int64())),
    })


def _write(table: pa.Table, path: Path, rows_per_group: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=rows_per_group)
    return path


def _arrays(store: Path) -> dict[str, bytes]:
    """Every array file of a store (meta.json names its sources, which differ)."""
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*.bin"))}


def _assert_no_output(out: Path) -> None:
    assert not out.exists() and not partial_path(out).exists()


def test_parquet_video_level_store_holds_every_row(tmp_path: Path) -> None:
    d = _video_data()
    path = _write(_video_table(d), tmp_path / "v.parquet")
    assert detect_format([path]) == "parquet" and detect_format([tmp_path]) == "parquet"
    meta = ingest_embeddings([path], tmp_path / "s", _options(video_dtype="float32"))
    store = Store(tmp_path / "s")
    assert meta.sources == [str(path)]  # each file once, though journalled by row group
    assert store.dims == {"clip": 8, "clap": 4} and store.meta.level == "video"
    assert store.ids() == d["ids"]
    np.testing.assert_array_equal(store.video_features("clip"), d["clip"])
    np.testing.assert_array_equal(store.video_features("clap"), d["clap"])
    for i, labels in enumerate(d["labels"]):
        assert store.labels_of(i).tolist() == (labels or [])
        assert bool(store.labelled[i]) == (labels is not None)
    assert store.num_classes == max(max(x) for x in d["labels"] if x) + 1
    # Labels that are all empty lists (pyarrow types them list<null>); no labels column.
    for labels, labelled in ((pa.array([[]] * 60), True), (None, False)):
        table = _video_table(d).drop_columns(["labels"])
        if labels is not None:
            table = table.append_column("labels", labels)
        other = _write(table, tmp_path / f"l{labelled}.parquet")
        meta = ingest_embeddings([other], tmp_path / f"s{labelled}", _options(num_classes=3))
        assert meta.num_labels == 0 and meta.num_unlabelled == (0 if labelled else 60)
    # float16 by default, as for TFRecords; one store whatever the threads
    ingest_embeddings([path], tmp_path / "h", _options(workers=1))
    np.testing.assert_array_equal(Store(tmp_path / "h").video_features("clip"),
                                  d["clip"].astype(np.float16))
    ingest_embeddings([path], tmp_path / "h2", _options(workers=2))
    assert _arrays(tmp_path / "h") == _arrays(tmp_path / "h2")


def test_labels_as_names_through_a_vocabulary(tmp_path: Path) -> None:
    vocabulary = tmp_path / "vocabulary.csv"
    # Rows out of index order, as the official file's are; index 9 is the largest.
    vocabulary.write_text("Index,Name\n9,Piano\n0,Guitar\n3,Video game\n")
    table = pa.table({"id": ["a", "b", "c"],
                      "clip": pa.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]),
                      "labels": pa.array([["Piano", "Guitar"], [], ["Video game"]])})
    path = _write(table, tmp_path / "names.parquet")
    ingest_embeddings([path], tmp_path / "s", _options(vocabulary=str(vocabulary)))
    store = Store(tmp_path / "s")
    assert [store.labels_of(i).tolist() for i in range(3)] == [[9, 0], [], [3]]
    assert store.num_classes == 10  # the vocabulary's, not the largest label seen + 1
    with pytest.raises(BadInputError, match="give --vocabulary"):
        ingest_embeddings([path], tmp_path / "t", _options())
    _assert_no_output(tmp_path / "t")
    bad = _write(table.set_column(2, "labels", pa.array([["Piano"], ["Drums"], []])),
                 tmp_path / "bad.parquet")
    with pytest.raises(BadInputError) as err:
        ingest_embeddings([bad], tmp_path / "u", _options(vocabulary=str(vocabulary)))
    assert str(err.value).startswith(f"{bad}, row 1: label 'Drums' is not in the vocabulary")
    _assert_no_output(tmp_path / "u")


def _frame_data(n: int = 20, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 13, n)
    counts[3] = 12  # longer than a row group of 5: spans three of them
    total = int(counts.sum())
    return {"ids": [f"f{i:03d}" for i in range(n)], "counts": counts,
            "clip": np.clip(rng.normal(0, 0.5, (total, 6)), -1.9, 1.9).astype(np.float32),
            "clap": np.clip(rng.normal(0, 0.5, (total, 3)), -1.9, 1.9).astype(np.float32),
            "labels": _labels(rng, n)}


def _nested_table(d: dict) -> pa.Table:
    offsets = pa.array(np.concatenate([[0], np.cumsum(d["counts"])]).astype(np.int32))

    def frames(values: np.ndarray) -> pa.Array:
        inner = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        return pa.ListArray.from_arrays(offsets, inner)

    return pa.table({"id": d["ids"], "clip": frames(d["clip"]), "clap": frames(d["clap"]),
                     "labels": pa.array(d["labels"], pa.list_(pa.int64()))})


def _rows_table(d: dict) -> pa.Table:
    counts = d["counts"]
    ids = np.repeat(d["ids"], counts).tolist()
    labels: list = []
    for i, c in enumerate(counts):
        # Labels on every row, or on the first row only (null after): both are read.
        labels += [d["labels"][i]] * c if i % 2 else [d["labels"][i]] + [None] * (c - 1)
    return pa.table({"id": ids, "clip": pa.array(list(d["clip"]), pa.list_(pa.float32())),
                     "clap": pa.array(list(d["clap"]), pa.list_(pa.float32())),
                     "labels": pa.array(labels, pa.list_(pa.int64()))})


def test_parquet_frame_level_both_layouts_make_one_store(tmp_path: Path) -> None:
    d = _frame_data()
    nested = _write(_nested_table(d), tmp_path / "nested.parquet", 6)
    rows = _write(_rows_table(d), tmp_path / "rows.parquet", 5)
    assert pq.ParquetFile(rows).metadata.num_row_groups > 20
    ingest_embeddings([nested], tmp_path / "a", _options(video_dtype="float32"))
    ingest_embeddings([rows], tmp_path / "b", _options(video_dtype="float32", level="frame"))
    assert _arrays(tmp_path / "a") == _arrays(tmp_path / "b")
    store = Store(tmp_path / "b")
    assert store.meta.level == "frame" and store.ids() == d["ids"]
    np.testing.assert_array_equal(store.frame_counts(), d["counts"])
    np.testing.assert_array_equal(store.frame_features("clip"), quantize(d["clip"]))
    starts = np.concatenate([[0], np.cumsum(d["counts"])[:-1]])
    means = np.add.reduceat(d["clip"], starts, axis=0) / d["counts"][:, None]
    np.testing.assert_allclose(store.video_features("clip"), means, rtol=1e-6, atol=1e-7)
    assert [store.labels_of(i).tolist() for i in range(len(d["ids"]))] == [
        x or [] for x in d["labels"]]
    # A later row's labels that disagree with the first row's are a fault of the video.
    table = _rows_table(d)
    labels = table.column("labels").to_pylist()
    first_of_video_5 = int(d["counts"][:5].sum())
    labels[first_of_video_5 + d["counts"][5] - 1] = [5, 1]
    bad = _write(table.set_column(3, "labels", pa.array(labels, pa.list_(pa.int64()))),
                 tmp_path / "bad.parquet", 5)
    with pytest.raises(BadInputError, match=rf"bad.parquet, row {first_of_video_5}: labels of "
                                            rf"row \d+ differ"):
        ingest_embeddings([bad], tmp_path / "c", _options(level="frame"))
    _assert_no_output(tmp_path / "c")


def _numpy_folder(d: dict, folder: Path, frames: bool = False, labels_txt: bool = False
                  ) -> Path:
    folder.mkdir(parents=True)
    np.save(folder / "clip.npy", d["clip"])
    np.save(folder / "clap.npy", d["clap"])
    if frames:
        np.save(folder / "frame_counts.npy", d["counts"])
    (folder / "ids.txt").write_text("".join(f"{i}\n" for i in d["ids"]))
    if labels_txt:
        (folder / "labels.txt").write_text(
            "".join(" ".join(map(str, x or [])) + "\n" for x in d["labels"]))
    else:
        (folder / "labels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in d["labels"]))
    return folder


def test_numpy_folder_and_npz_give_the_parquet_store(tmp_path: Path) -> None:
    d = _video_data()
    ingest_embeddings([_write(_video_table(d), tmp_path / "v.parquet")], tmp_path / "p",
                      _options())
    want = _arrays(tmp_path / "p")
    folder = _numpy_folder(d, tmp_path / "npy")
    assert detect_format([folder]) == "numpy"
    ingest_embeddings([folder], tmp_path / "n", _options(rows_per_unit=16))
    assert _arrays(tmp_path / "n") == want
    assert Store(tmp_path / "n").dims == {"clap": 4, "clip": 8}  # the files' order
    for save in (np.savez, np.savez_compressed):  # memory mapped; decompressed as a stream
        archive = tmp_path / save.__name__ / "emb.npz"
        archive.parent.mkdir()
        save(archive, clip=d["clip"], clap=d["clap"])
        for name in ("ids.txt", "labels.jsonl"):
            (archive.parent / name).write_bytes((folder / name).read_bytes())
        out = tmp_path / f"z_{save.__name__}"
        ingest_embeddings([archive], out, _options(rows_per_unit=16, modalities=["clip", "clap"]))
        assert _arrays(out) == want, save.__name__
    # Unlabelled videos need JSON's null; labels.txt has no such thing, so video 4 is
    # labelled (with no labels) there.
    txt = _numpy_folder(d, tmp_path / "txt", labels_txt=True)
    ingest_embeddings([txt], tmp_path / "t", _options())
    store = Store(tmp_path / "t")
    assert store.labelled.all() and store.labels_of(7).tolist() == (d["labels"][7] or [])


def test_numpy_frames_as_counts_or_3d_arrays(tmp_path: Path) -> None:
    d = _frame_data()
    ingest_embeddings([_write(_nested_table(d), tmp_path / "f.parquet")], tmp_path / "p",
                      _options())
    ingest_embeddings([_numpy_folder(d, tmp_path / "npy", frames=True)], tmp_path / "n",
                      _options(rows_per_unit=3))
    assert _arrays(tmp_path / "n") == _arrays(tmp_path / "p")
    # (videos, frames, dim): every video 4 frames
    d4 = {**d, "counts": np.full(len(d["ids"]), 4)}
    total = 4 * len(d["ids"])
    d4["clip"], d4["clap"] = d["clip"][:total], d["clap"][:total]
    ingest_embeddings([_write(_nested_table(d4), tmp_path / "f4.parquet")], tmp_path / "p4",
                      _options())
    folder = tmp_path / "npy3"
    _numpy_folder({**d4, "clip": d4["clip"].reshape(-1, 4, 6),
                   "clap": d4["clap"].reshape(-1, 4, 3)}, folder)
    ingest_embeddings([folder], tmp_path / "n4", _options(rows_per_unit=7))
    assert _arrays(tmp_path / "n4") == _arrays(tmp_path / "p4")


def _spoil(kind: str, d: dict) -> tuple[pa.Table, int, str, dict]:
    """A table with one fault; the row it is in, the message, the options it needs."""
    t = _video_table(d)
    clip = d["clip"].copy()
    ids = list(d["ids"])
    labels = list(d["labels"])
    options: dict = {}
    if kind == "nan":
        clip[13, 2] = np.nan
        return t.set_column(1, "clip", pa.FixedSizeListArray.from_arrays(
            pa.array(clip.ravel()), 8)), 13, "feature 'clip' holds NaN or Inf", options
    if kind == "width":
        clap = [list(r) for r in d["clap"]]
        clap[20] = clap[20][:3]
        return (t.set_column(2, "clap", pa.array(clap, pa.list_(pa.float32()))), 20,
                "feature 'clap' has 3 values, expected 4", options)
    if kind == "null_feature":
        clap = [list(r) for r in d["clap"]]
        clap[9] = None
        return (t.set_column(2, "clap", pa.array(clap, pa.list_(pa.float32()))), 9,
                "feature 'clap' is null", options)
    if kind == "null_id":
        ids[5] = None
        return t.set_column(0, "id", pa.array(ids)), 5, "video id is missing", options
    if kind == "comma_id":
        ids[8] = "a,b"
        return (t.set_column(0, "id", pa.array(ids)), 8,
                "video id 'a,b' holds whitespace, a comma", options)
    if kind == "label_range":
        labels[30] = [1, 7]
        return (t.set_column(3, "labels", pa.array(labels, pa.list_(pa.int64()))), 30,
                "label id 7 out of range [0, 6)", {"num_classes": 6})
    if kind == "negative_label":
        labels[31] = [-2]
        return (t.set_column(3, "labels", pa.array(labels, pa.list_(pa.int64()))), 31,
                "label id -2 out of range (negative)", options)
    if kind == "duplicate":
        ids[40] = "v3"
        return (t.set_column(0, "id", pa.array(ids)), 40,
                "duplicate video id 'v3' (first seen in", options)
    if kind == "half":
        clip[17, 0] = 1e6
        return (t.set_column(1, "clip", pa.FixedSizeListArray.from_arrays(
            pa.array(clip.ravel()), 8)), 17, "feature 'clip' holds 1e+06, beyond float16's range",
            options)
    raise AssertionError(kind)


FAULTS = ["nan", "width", "null_feature", "null_id", "comma_id", "label_range",
          "negative_label", "duplicate", "half"]


@pytest.mark.parametrize("kind", FAULTS)
def test_a_bad_row_is_named_and_leaves_no_store(tmp_path: Path, kind: str) -> None:
    d = _video_data()
    table, row, what, extra = _spoil(kind, d)
    path = _write(table, tmp_path / "bad.parquet")
    out = tmp_path / "s"
    with pytest.raises(BadInputError) as err:
        ingest_embeddings([path], out, _options(**extra))
    # The duplicate is found after every row group: the writer's message says "record".
    where = "record" if kind == "duplicate" else "row"
    assert str(err.value).startswith(f"{path}, {where} {row}: {what}"), str(err.value)
    _assert_no_output(out)
    # --skip-corrupt: that row alone is skipped, and listed
    meta = ingest_embeddings([path], out, _options(skip_corrupt=True, **extra))
    assert meta.num_videos == len(d["ids"]) - 1
    assert [s.record for s in meta.skipped] == [row]
    assert meta.skipped[0].what.startswith(what) and meta.skipped[0].path == str(path)


def test_frame_values_beyond_the_8_bit_range_are_refused(tmp_path: Path) -> None:
    d = _frame_data()
    d["clip"][int(d["counts"][:6].sum()) + 1, 0] = 2.5  # video 6's second frame
    path = _write(_nested_table(d), tmp_path / "f.parquet")
    with pytest.raises(BadInputError, match=r"f.parquet, row 6: frame feature 'clip' holds "
                                            r"values beyond \[-2, 2\]"):
        ingest_embeddings([path], tmp_path / "s", _options())
    _assert_no_output(tmp_path / "s")


@pytest.mark.parametrize("case", ["no_id", "ints_column", "missing_modality", "mixed_layouts",
                                  "bad_name", "reserved_name", "no_labels_column", "ids_count",
                                  "labels_count", "not_parquet"])
def test_inputs_that_cannot_be_read_are_named(tmp_path: Path, case: str) -> None:
    d = _video_data(10)
    table = _video_table(d)
    options: dict = {}
    source: Path
    if case in ("ids_count", "labels_count"):
        source = _numpy_folder(d, tmp_path / "npy")
        name = "ids.txt" if case == "ids_count" else "labels.jsonl"
        lines = (source / name).read_text().splitlines()
        (source / name).write_text("\n".join(lines[:-1]) + "\n")
        message = "has 10 rows, but there are 9 ids" if case == "ids_count" else \
            "9 lines, but"
    elif case == "not_parquet":
        source = tmp_path / "x.parquet"
        source.write_bytes(b"not parquet at all")
        message = "not a readable Parquet file"
    else:
        if case == "no_id":
            table = table.rename_columns(["key", "clip", "clap", "labels"])
            message = "no id column 'id'"
        elif case == "ints_column":
            table = table.append_column("extra", pa.array([[1]] * 10))
            options["modalities"] = ["clip", "extra"]
            message = "column 'extra' is list<element: int64>: a modality must be a list"
        elif case == "missing_modality":
            options["modalities"] = ["clip", "audio"]
            message = "no column ['audio']"
        elif case == "mixed_layouts":
            table = table.append_column("frames", pa.array([[[0.5]]] * 10))
            message = "one layout for all"
        elif case == "reserved_name":
            table = table.rename_columns(["id", "clip", "frame_mask", "labels"])
            message = "modality name 'frame_mask' is reserved"
        elif case == "no_labels_column":
            options["labels_column"] = "tags"
            message = "no labels column 'tags'"
        else:
            table = table.rename_columns(["id", "clip", "mean/x", "labels"])
            message = "modality name 'mean/x'"
        source = _write(table, tmp_path / "t.parquet")
    with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ingest_embeddings([source], tmp_path / "s", _options(**options))
    _assert_no_output(tmp_path / "s")


def _count_reads(monkeypatch: pytest.MonkeyPatch, cls: type) -> list[int]:
    reads: list[int] = []
    original = cls.read

    def read(self: object, unit: object) -> object:
        reads.append(unit.index)  # type: ignore[attr-defined]
        return original(self, unit)

    monkeypatch.setattr(cls, "read", read)
    return reads


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, appends: int) -> None:
    original = StoreWriter.append
    calls = {"n": 0}

    def append(self: StoreWriter, chunk: object) -> None:
        calls["n"] += 1
        if calls["n"] > appends:
            raise KeyboardInterrupt
        original(self, chunk)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreWriter, "append", append)


@pytest.mark.parametrize("source_kind", ["parquet", "numpy"])
def test_an_interrupted_ingest_resumes_where_it_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source_kind: str) -> None:
    from yt8mkit.data.numpy_source import NumpySource
    from yt8mkit.data.parquet_source import ParquetSource

    d = _video_data()
    if source_kind == "parquet":
        source, cls = _write(_video_table(d), tmp_path / "v.parquet"), ParquetSource
    else:
        source, cls = _numpy_folder(d, tmp_path / "npy"), NumpySource
    options = _options(workers=1, rows_per_unit=7)
    ingest_embeddings([source], tmp_path / "clean", options)
    out = tmp_path / "s"
    with monkeypatch.context() as m:
        _interrupt_after(m, 3)
        with pytest.raises(KeyboardInterrupt):
            ingest_embeddings([source], out, options)
    assert partial_path(out).is_dir() and not out.exists()
    reads = _count_reads(monkeypatch, cls)
    ingest_embeddings([source], out, options)
    assert reads == list(range(3, 9))  # 60 rows, 7 a unit: units 3..8 only
    assert _arrays(out) == _arrays(tmp_path / "clean")


def test_an_input_changed_after_an_interruption_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _video_data()
    path = _write(_video_table(d), tmp_path / "v.parquet")
    out = tmp_path / "s"
    with monkeypatch.context() as m:
        _interrupt_after(m, 4)
        with pytest.raises(KeyboardInterrupt):
            ingest_embeddings([path], out, _options(workers=1))
    stat = path.stat()
    d["clip"][0] += 1.0  # the first row group changes; same size and mtime
    _write(_video_table(d), path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    ingest_embeddings([path], out, _options(workers=1))
    ingest_embeddings([path], tmp_path / "clean", _options(workers=1))
    assert _arrays(out) == _arrays(tmp_path / "clean")


KILLER = """
import os, signal, sys
from yt8mkit.data import store
from yt8mkit.data.embedding_ingest import ingest_embeddings
from yt8mkit.data.embeddings import EmbeddingOptions
original = store.StoreWriter._append
calls = {"n": 0}
def append(self, name, data):
    calls["n"] += 1
    if calls["n"] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, name, data)
store.StoreWriter._append = append
ingest_embeddings([sys.argv[1]], sys.argv[2], EmbeddingOptions(workers=2, level="frame"))
"""


def test_sigkill_mid_write_then_resume_equals_a_clean_ingest(tmp_path: Path) -> None:
    """A real kill -9 inside the store writer (frame level, one row a frame)."""
    d = _frame_data()
    path = _write(_rows_table(d), tmp_path / "rows.parquet", 5)
    ingest_embeddings([path], tmp_path / "clean", _options(level="frame"))
    out = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for kill_at in (25, 60):  # twice in a row, at two points of the writing
        done = subprocess.run([sys.executable, "-c", KILLER, str(path), str(out), str(kill_at)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == -signal.SIGKILL, done.stderr
    assert partial_path(out).is_dir()
    ingest_embeddings([path], out, _options(level="frame"))
    assert _arrays(out) == _arrays(tmp_path / "clean")


def test_a_second_writer_is_refused_and_out_may_not_hold_the_input(tmp_path: Path) -> None:
    from yt8mkit.locks import LockedError, store_lock_file
    from yt8mkit.outputs import OutputError

    path = _write(_video_table(_video_data()), tmp_path / "in" / "v.parquet")
    out = tmp_path / "s"
    code = ("import time; from pathlib import Path; from yt8mkit.locks import acquire;"
            f"acquire(Path({str(store_lock_file(out))!r}), 'test'); print('held', flush=True);"
            "time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("YT8M_HELD_LOCKS", None)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env,
                              start_new_session=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(LockedError, match=f"in use by pid {holder.pid}"):
            ingest_embeddings([path], out, _options())
        _assert_no_output(out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert ingest_embeddings([path], out, _options()).num_videos == 60  # lock taken over
    for bad in (tmp_path / "in", tmp_path):  # the input's folder, or a folder above it
        with pytest.raises(OutputError, match="holds the input"):
            ingest_embeddings([path], bad, _options())
    assert path.is_file()


def test_the_ingest_command_reads_parquet_and_names_a_bad_row(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yt8mkit.cli.main import app

    runner = CliRunner()
    d = _video_data()
    good = _write(_video_table(d), tmp_path / "good.parquet")
    result = runner.invoke(app, ["ingest", str(good), "--out", str(tmp_path / "s"),
                                 "--modalities", "clip", "--float32", "--folds", "2"])
    assert result.exit_code == 0, result.output
    store = Store(tmp_path / "s")
    assert store.dims == {"clip": 8} and store.meta.video_dtype == "float32"
    assert sorted(set(store.folds().tolist())) == [0, 1]
    table, row, what, _ = _spoil("nan", d)
    bad = _write(table, tmp_path / "bad.parquet")
    result = runner.invoke(app, ["ingest", str(bad), "--out", str(tmp_path / "t")])
    assert result.exit_code == 1 and f"row {row}: {what}" in result.output
    assert "Traceback" not in result.output
    _assert_no_output(tmp_path / "t")
