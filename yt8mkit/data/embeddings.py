"""Ingest of one's own embeddings (Parquet, NumPy) into the same store as TFRecords.

A reader (``parquet_source``, ``numpy_source``) cuts its input into units (a Parquet row
group, a block of rows of the NumPy arrays) and turns each into ``RawRows``: the ids,
labels and float features of the videos that start in it, as the file holds them. Here
every unit goes through the checks the TFRecord path makes (ids, NaN/Inf, float16 range,
label range, widths, frame counts), and becomes a ``ShardChunk`` that the store writer
appends and journals exactly as it does a TFRecord file: so the store, the resume after
a kill, the lock and the no-partial-output rule are those of ``yt8m ingest``.

Errors name the file, the row (the first row of a video, for one row per frame) and the
fault. A unit is the journal's unit too: a resume restarts at the first unit not
recorded whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, field_validator

from yt8mkit.data.fastparse import gather_features
from yt8mkit.data.half import as_video_dtype
from yt8mkit.data.ids import bad_ids, id_fault
from yt8mkit.data.quantize import MAX_QUANTIZED, MIN_QUANTIZED, quantize
from yt8mkit.data.shard import MAX_CLASSES, ShardChunk, pack_ids
from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.errors import BadInputError

Format = Literal["tfrecord", "parquet", "numpy"]
PARQUET_SUFFIXES = (".parquet", ".pq")
# A modality names files (video/NAME.bin), ONNX inputs and config keys.
_MODALITY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class BadRowError(BadInputError):
    """BadInputError whose position is a row of a table (Parquet, NumPy), not a record."""

    def __init__(self, path: str, what: str, record: int | None = None) -> None:
        super().__init__(path, what, record)
        if record is not None:
            self.args = (f"{self.path}, row {record}: {what}",)


class EmbeddingOptions(BaseModel):
    """How to read Parquet or NumPy embeddings; what decides the store, but the workers
    and resume, goes into the journal's key (a change restarts the ingest)."""

    workers: int = Field(2, ge=1)
    num_classes: int | None = Field(None, ge=1, le=MAX_CLASSES)
    video_dtype: Literal["float16", "float32"] = "float16"
    skip_corrupt: bool = False
    resume: bool = True
    id_column: str = "id"
    # None: a column named "labels" where there is one (else the videos are unlabelled);
    # a name given must be there.
    labels_column: str | None = None
    # None: every list column of the Parquet file but the id and labels (every array of
    # the NumPy folder), in the file's order.
    modalities: list[str] | None = None
    # auto: frame-level where a modality column is a list of lists (or NumPy frame
    # counts / 3-D arrays are there), else video-level; frame with flat lists: one
    # Parquet row a frame, a video's rows one after another.
    level: Literal["auto", "video", "frame"] = "auto"
    vocabulary: str | None = None  # maps label names to indices (Index, Name columns)
    ids_file: str | None = None  # NumPy: one id a line (default ids.txt beside the arrays)
    labels_file: str | None = None  # NumPy: labels.jsonl / labels.txt beside the arrays
    rows_per_unit: int = Field(16384, ge=1)  # NumPy: videos a unit (and journal line)

    @field_validator("modalities")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value or len(set(value)) != len(value):
                raise ValueError(f"modalities must be a non-empty list without repeats: {value}")
            for name in value:
                check_modality_name(name, "--modalities")
        return value


# Keys that a batch of features holds beside the modalities.
RESERVED_NAMES = ("frame_mask", "frame_counts")


def check_modality_name(name: str, where: str) -> None:
    if name in RESERVED_NAMES:
        raise BadInputError(where, f"modality name {name!r} is reserved; rename the column")
    if not _MODALITY_NAME.match(name):
        raise BadInputError(where, f"modality name {name!r} must be a letter followed by "
                                   f"letters, digits or '_' (it names files and model inputs)")


@dataclass(frozen=True)
class UnitIdentity:
    """What a unit's input was when it was read (``StoreWriter`` compares it on resume)."""

    values: dict

    def as_dict(self) -> dict:
        return self.values


@dataclass
class Labels:
    """Each video's labels as the file holds them: ints, or names to map."""

    offsets: np.ndarray  # int64 (n + 1)
    values: np.ndarray  # int64, or object (str) for names
    present: np.ndarray  # bool (n): False where the video has no labels (null, unlabelled)


@dataclass
class PackedIds:
    """Ids as ``ShardChunk`` packs them (none missing): a string column's own buffers."""

    id_bytes: np.ndarray
    id_offsets: np.ndarray


@dataclass
class RawRows:
    """The videos that start in one unit, before any check."""

    path: str
    rows: np.ndarray  # int64: the row of each video in its file (errors name it)
    ids: list | PackedIds  # str or bytes, None where the file holds none; or packed
    labels: Labels | None  # None: no labels column, every video unlabelled
    # modality -> (videos, dim) video-level, or (frames, dim) with ``frame_counts``;
    # rows where ``faults`` holds a reader's fault may hold anything.
    features: dict[str, np.ndarray]
    frame_counts: np.ndarray | None = None
    faults: dict[int, str] = field(default_factory=dict)  # video -> the reader's fault
    identity: UnitIdentity | None = None

    @property
    def num_videos(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class Unit:
    path: str  # the file, as named in errors and in the store's sources
    index: int  # the reader's own position (row group, block)


class Source(Protocol):
    """A reader of one format (``parquet_source.ParquetSource``, ``numpy_source``)."""

    paths: list[str]  # the input files (for the --out checks)
    folders: list[str]
    dims: dict[str, int]
    level: Literal["video", "frame"]
    sequential: bool  # units must be read in order, in one thread

    def units(self) -> list[Unit]: ...

    def read(self, unit: Unit) -> RawRows: ...

    def identity(self, unit: Unit) -> UnitIdentity: ...


# ---------------------------------------------------------------- finding the format


def _suffixes_in(folder: Path) -> set[str]:
    return {p.suffix.lower() for p in folder.iterdir() if p.is_file()}


def detect_format(sources: Sequence[str | os.PathLike[str]]) -> Format:
    """Which reader the inputs need: Parquet files or folders of them, a NumPy folder or
    ``.npz``, else TFRecords (whose own reader names what it cannot read)."""
    kinds: set[Format] = set()
    for source in sources:
        path = Path(source)
        suffix = path.suffix.lower()
        if path.is_dir():
            found = _suffixes_in(path)
            if found & set(PARQUET_SUFFIXES):
                kinds.add("parquet")
            elif found & {".npy", ".npz"}:
                kinds.add("numpy")
            else:
                kinds.add("tfrecord")
        elif suffix in PARQUET_SUFFIXES or (
                any(str(source).endswith(s) for s in PARQUET_SUFFIXES)):
            kinds.add("parquet")
        elif suffix in (".npz", ".npy"):
            kinds.add("numpy")
        else:
            kinds.add("tfrecord")
    if len(kinds) > 1:
        raise BadInputError(", ".join(map(str, sources)),
                            f"inputs of several formats ({', '.join(sorted(kinds))}); "
                            f"ingest one format at a time")
    return kinds.pop() if kinds else "tfrecord"


# ---------------------------------------------------------------- checks


class _Faults:
    """The first fault of each video, in the order of the checks (as for TFRecords:
    features, then the id, then the labels)."""

    def __init__(self, given: dict[int, str]) -> None:
        self.what: dict[int, str] = dict(given)

    def add(self, bad: np.ndarray, message: Callable[[int], str]) -> None:
        for video in np.flatnonzero(bad).tolist():
            if video not in self.what:
                self.what[video] = message(video)


def _per_video(flags: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Any of each video's frames flagged (frames one video after another)."""
    if not len(counts):
        return np.zeros(0, bool)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.zeros(len(counts), bool)
    nonempty = counts > 0
    out[nonempty] = np.logical_or.reduceat(flags, starts[nonempty])
    return out


def _cast_and_check(values: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, dim) features in the store's dtype, and whether each row is finite both as
    given and after the cast (a float32 beyond float16's range becomes infinity): one C
    pass without the GIL (``gather_features``, the TFRecord path's), not an isfinite, two
    reductions and a cast, each a pass over a row group's features."""
    values = np.ascontiguousarray(values, np.float32)
    n, dim = values.shape
    if n == 0:
        return values.astype(dtype), np.ones(0, bool)
    starts = np.arange(n, dtype=np.int64) * (4 * dim)
    return gather_features(values.view(np.uint8).reshape(-1), starts, dim, dtype)


def _check_features(raw: RawRows, faults: _Faults, dtype: str) -> dict[str, np.ndarray]:
    """The faults of the features; for video-level rows, the features cast to ``dtype``."""
    frame_level = raw.frame_counts is not None
    cast: dict[str, np.ndarray] = {}
    for name, values in raw.features.items():
        if frame_level:
            what = f"frame feature '{name}'"
            counts = raw.frame_counts
            finite = np.isfinite(values).all(axis=1)
            # Reductions, not |values| (a copy of the frames): a row with NaN gets NaN
            # here, which compares False, and is a fault of its own already.
            big = np.maximum(values.max(axis=1), -values.min(axis=1)) if values.size \
                else np.zeros(len(values), values.dtype)
            faults.add(_per_video(~finite, counts), lambda v, w=what: f"{w} holds NaN or Inf")
            faults.add(_per_video(big > MAX_QUANTIZED, counts),
                       lambda v, w=what: f"{w} holds values beyond [{MIN_QUANTIZED:g}, "
                                         f"{MAX_QUANTIZED:g}], the range of the store's 8-bit "
                                         f"frames (as YouTube-8M's); scale the embeddings")
            continue
        what = f"feature '{name}'"
        cast[name], finite = _cast_and_check(values, dtype)
        bad = np.flatnonzero(~finite)
        if bad.size:  # told apart only for the few rows at fault
            given = np.asarray(values[bad], np.float32)
            nan = ~np.isfinite(given).all(axis=1)
            big = np.abs(np.where(np.isfinite(given), given, 0)).max(axis=1)
            rows = np.zeros(len(values), bool)
            rows[bad[nan]] = True
            faults.add(rows, lambda v, w=what: f"{w} holds NaN or Inf")
            rows[:] = False
            rows[bad[~nan]] = True
            where = {int(r): float(b) for r, b in zip(bad, big)}
            faults.add(rows, lambda v, w=what, b=where: f"{w} holds {b[v]:g}, beyond "
                       f"float16's range (65504) of the store; ingest with --float32 to keep it")
    if frame_level:
        faults.add(raw.frame_counts == 0, lambda v: "video has no frames")
    return cast


def _check_ids(raw: RawRows, faults: _Faults) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(raw.ids, PackedIds):
        id_bytes, id_offsets = raw.ids.id_bytes, raw.ids.id_offsets

        def text(v: int) -> bytes:
            return id_bytes[id_offsets[v]:id_offsets[v + 1]].tobytes()
    else:
        ids = [b"" if i is None else (i if isinstance(i, bytes) else str(i).encode())
               for i in raw.ids]
        id_bytes, id_offsets = pack_ids(ids)
        faults.add(np.array([i is None for i in raw.ids], bool),
                   lambda v: "video id is missing (null)")

        def text(v: int) -> bytes:
            return ids[v]
    faults.add(bad_ids(id_bytes, id_offsets), lambda v: id_fault(text(v)) or "bad video id")
    return id_bytes, id_offsets


def _label_ids(raw: RawRows, faults: _Faults, num_classes: int | None,
               vocabulary: Vocabulary | None, names_index: dict[str, int] | None
               ) -> np.ndarray:
    """int64 label ids of every video, one after another (zeros where they fault)."""
    labels = raw.labels
    assert labels is not None
    counts = np.diff(labels.offsets)
    owner = np.repeat(np.arange(raw.num_videos), counts)
    values = labels.values
    if values.dtype == object:  # names
        if names_index is None:
            faults.add(counts > 0, lambda v: "labels are names: give --vocabulary to map them")
            return np.zeros(len(values), np.int64)
        uniq, inverse = np.unique(values.astype(str), return_inverse=True) if len(values) \
            else (np.zeros(0, str), np.zeros(0, np.int64))
        mapped = np.array([names_index.get(str(u), -1) for u in uniq], np.int64)
        ids = mapped[inverse] if len(values) else np.zeros(0, np.int64)
        path = vocabulary.path if vocabulary is not None else "the vocabulary"
        for code, what in ((-1, "is not in the vocabulary"),
                           (-2, "names several classes of the vocabulary")):
            bad = ids == code
            if bad.any():
                first = {}
                for v, name in zip(owner[bad].tolist(), values[bad].tolist()):
                    first.setdefault(v, name)
                faults.add(np.isin(np.arange(raw.num_videos), list(first)),
                           lambda v, w=what, f=first: f"label {f[v]!r} {w} {path}")
        return np.where(ids < 0, 0, ids)
    ids = values.astype(np.int64, copy=False)
    if ids.size:
        low = np.zeros(raw.num_videos, np.int64)
        np.minimum.at(low, owner, ids)
        faults.add(low < 0, lambda v: f"label id {int(low[v])} out of range (negative)")
        high = np.full(raw.num_videos, -1, np.int64)
        np.maximum.at(high, owner, ids)
        if num_classes is not None:
            faults.add(high >= num_classes,
                       lambda v: f"label id {int(high[v])} out of range [0, {num_classes})")
        faults.add(high >= MAX_CLASSES,
                   lambda v: f"label id {int(high[v])} out of range: the store keeps class ids "
                             f"as int32, at most {MAX_CLASSES - 1}")
    return ids


def names_index(vocabulary: Vocabulary | None) -> dict[str, int] | None:
    """Name -> index; -2 for a name several classes share (ambiguous if used)."""
    if vocabulary is None:
        return None
    out: dict[str, int] = {}
    for index, name in vocabulary.names.items():
        out[name] = -2 if name in out else index
    return out


def to_chunk(raw: RawRows, options: EmbeddingOptions, vocabulary: Vocabulary | None,
             index: dict[str, int] | None) -> ShardChunk:
    """Every check of a unit's videos; the ones that pass as a ``ShardChunk``. A fault
    raises BadRowError naming the earliest bad row, or with --skip-corrupt skips it."""
    n = raw.num_videos
    faults = _Faults(raw.faults)
    cast = _check_features(raw, faults, options.video_dtype)
    id_bytes, id_offsets = _check_ids(raw, faults)
    label_ids = np.zeros(0, np.int64)
    if raw.labels is not None:
        label_ids = _label_ids(raw, faults, options.num_classes, vocabulary, index)
    skipped: list[BadInputError] = []
    keep = np.ones(n, bool)
    if faults.what:
        first = min(faults.what, key=lambda v: int(raw.rows[v]))
        if not options.skip_corrupt:
            raise BadRowError(raw.path, faults.what[first], int(raw.rows[first]))
        for video in sorted(faults.what):
            skipped.append(BadRowError(raw.path, faults.what[video], int(raw.rows[video])))
            keep[video] = False
    return _assemble(raw, keep, id_bytes, id_offsets, label_ids, options, skipped, cast)


def _assemble(raw: RawRows, keep: np.ndarray, id_bytes: np.ndarray, id_offsets: np.ndarray,
              label_ids: np.ndarray, options: EmbeddingOptions,
              skipped: list[BadInputError], cast: dict[str, np.ndarray]) -> ShardChunk:
    all_kept = bool(keep.all())
    if not all_kept:
        ids = [id_bytes[id_offsets[i]:id_offsets[i + 1]].tobytes() for i in np.flatnonzero(keep)]
        id_bytes, id_offsets = pack_ids(ids)
    n = int(keep.sum())
    if raw.labels is not None:
        counts = np.diff(raw.labels.offsets)
        owner = np.repeat(np.arange(raw.num_videos), counts)
        label_indices = label_ids[keep[owner]].astype(np.int32)
        label_counts = counts[keep].astype(np.int32)
        labelled = raw.labels.present[keep]
    else:
        label_indices = np.zeros(0, np.int32)
        label_counts = np.zeros(n, np.int32)
        labelled = np.zeros(n, bool)
    chunk = ShardChunk(
        path=raw.path, level="video" if raw.frame_counts is None else "frame",
        id_bytes=id_bytes, id_offsets=id_offsets, label_counts=label_counts,
        label_indices=label_indices, labelled=labelled,
        record_indices=raw.rows[keep].astype(np.int32), skipped=skipped,
        identity=raw.identity,  # type: ignore[arg-type]
    )
    if raw.frame_counts is None:
        chunk.video = {m: v if all_kept else v[keep] for m, v in cast.items()}
        return chunk
    counts = raw.frame_counts
    frame_keep = np.repeat(keep, counts)
    kept_counts = counts[keep]
    chunk.frame_counts = kept_counts.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(kept_counts)[:-1]]).astype(np.int64)
    chunk.frames, chunk.video = {}, {}
    for m, values in raw.features.items():
        frames = values if all_kept else values[frame_keep]
        frames = np.asarray(frames, np.float32)
        # The video-level feature is the mean of the float frames (exact), as the
        # dataset's mean_rgb is of its own frames; the frames are kept at 8 bits.
        sums = np.add.reduceat(frames, starts, axis=0) if n else np.zeros((0, frames.shape[1]))
        means = (sums / np.maximum(kept_counts, 1)[:, None]).astype(np.float32)
        chunk.video[m] = as_video_dtype(means, options.video_dtype)
        chunk.frames[m] = quantize(frames)
    return chunk


# ---------------------------------------------------------------- the ingest


Progress = Callable[[str, int, int], None]  # (file, videos in the unit, units done)
