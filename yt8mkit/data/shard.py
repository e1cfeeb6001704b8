"""One TFRecord shard of YouTube-8M records decoded and validated into numpy arrays.

This is the unit of work of ingest: a worker turns one file into a ``ShardChunk`` and
the store writer appends chunks in file order. Every check that can be made on one
record is made here, so that an error names the file and the record; checks across
files (duplicate ids, one level and one set of dimensions for the whole store) are
the writer's.

Video-level shards are decoded a file at a time: framed and CRC-checked in bulk
(``read_spans``); every record scanned and checked in one C loop (``_check_records``:
``examine`` of native_examples.c, or where that was not built the numpy scan of
``fastparse.scan_examples`` and array expressions, which the tests hold it to); the
feature rows of the records that pass copied, checked for NaN and Inf and cast in
one pass (``gather_features``). The fast path only ever accepts a record that passes
every check; any other record (an unusual encoding, a fault) goes through the general
decoder and the scalar checks, which stay the reference, so the errors and their
messages are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal

import numpy as np

from yt8mkit.data import fastparse
from yt8mkit.data.example import Feature, WireError, decode_example, decode_sequence_example
from yt8mkit.data.fastparse import (
    BYTES_LIST,
    FLOAT_LIST,
    INT64_LIST,
    decode_varints,
    gather_features,
    gather_spans,
    scan_examples,
)
from yt8mkit.data.half import as_video_dtype
from yt8mkit.data.ids import bad_ids, id_fault
from yt8mkit.data.quantize import dequantize
from yt8mkit.data.schema import ID_KEYS, LABELS_KEY, FeatureSchema
from yt8mkit.data.tfrecord import FileIdentity, RecordSpans, read_spans
from yt8mkit.errors import BadInputError

Level = Literal["video", "frame"]

# Class ids are stored as int32: a larger label would wrap to another class.
MAX_CLASSES = 2**31 - 1
# The smallest magnitude that float16 rounds to infinity (65504 is its largest value).
HALF_OVERFLOW = 65520.0


@dataclass
class ShardChunk:
    """The valid records of one shard, in file order."""

    path: str
    level: Level
    # The ids one after another; video i's is id_bytes[id_offsets[i]:id_offsets[i + 1]].
    # One array, not a list of bytes objects: the writer appends it as it is.
    id_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    id_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    label_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    label_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    labelled: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # index of each video's record in the file (differs from position when records are skipped)
    record_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    # modality -> (videos, dim): the record's mean_* features, or for frame-level records
    # the mean of the dequantized frames, as the dataset defines video features; float32
    # unless ShardOptions.video_dtype says otherwise.
    video: dict[str, np.ndarray] = field(default_factory=dict)
    frame_counts: np.ndarray | None = None
    # modality -> (all frames of the shard, dim) uint8, videos one after another.
    frames: dict[str, np.ndarray] | None = None
    skipped: list[BadInputError] = field(default_factory=list)
    # The file as it was read (tfrecord.FileIdentity): the writer journals it.
    identity: FileIdentity | None = None

    @property
    def num_videos(self) -> int:
        return len(self.id_offsets) - 1

    @property
    def ids(self) -> list[bytes]:
        return unpack_ids(self.id_bytes, self.id_offsets)

    @property
    def dims(self) -> dict[str, int]:
        return {name: int(values.shape[1]) for name, values in self.video.items()}


def pack_ids(ids: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``ShardChunk.id_bytes`` and ``id_offsets`` of a list of ids."""
    lengths = np.fromiter(map(len, ids), np.int64, len(ids))
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
    return np.frombuffer(b"".join(ids), np.uint8), offsets


def unpack_ids(id_bytes: np.ndarray, id_offsets: np.ndarray) -> list[bytes]:
    """The list of ids that ``pack_ids`` packed."""
    blob = id_bytes.tobytes()
    return [blob[a:b] for a, b in pairwise(id_offsets.tolist())]


@dataclass(frozen=True)
class ShardOptions:
    """What a shard must look like. ``dims`` and ``level`` None mean: learn them from
    the first record, then hold every later record to them. ``video_dtype`` is the dtype
    of ``ShardChunk.video``: converting in the workers spares the one store writer a
    pass over every feature."""

    schema: FeatureSchema = field(default_factory=FeatureSchema)
    dims: dict[str, int] | None = None
    level: Level | None = None
    num_classes: int | None = None
    check_crc: bool = True
    skip_corrupt: bool = False
    video_dtype: str = "float32"


def detect_level(payload: bytes) -> Level:
    """A SequenceExample carries feature lists (field 2); an Example does not."""
    _, lists = decode_sequence_example(payload)
    return "frame" if lists else "video"


def _scan_keys(schema: FeatureSchema) -> list[str]:
    """The keys of a video-level record."""
    return [*ID_KEYS, LABELS_KEY, *(schema.video_key(m) for m in schema.modalities)]


class _RecordError(Exception):
    """A record-level fault; turned into BadInputError with the file and index."""


def _id_of(features: dict[str, Feature]) -> bytes:
    for key in ID_KEYS:
        feature = features.get(key)
        if feature is not None:
            if feature.bytes_list is None or len(feature.bytes_list) != 1:
                raise _RecordError(f"'{key}' must hold exactly one bytes value")
            fault = id_fault(feature.bytes_list[0])
            if fault is not None:
                raise _RecordError(fault)
            return feature.bytes_list[0]
    raise _RecordError(f"no video id: none of the keys {', '.join(ID_KEYS)} is present")


def _labels_of(features: dict[str, Feature], num_classes: int | None) -> np.ndarray | None:
    feature = features.get(LABELS_KEY)
    if feature is None:
        return None
    if feature.int64_list is None:
        if feature.kind == "empty":
            return np.zeros(0, np.int64)
        raise _RecordError(f"'{LABELS_KEY}' must be an int64 list, found {feature.kind}")
    labels = feature.int64_list
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise _RecordError(f"label id {low} out of range (negative)")
        if num_classes is not None and high >= num_classes:
            raise _RecordError(f"label id {high} out of range [0, {num_classes})")
        if high >= MAX_CLASSES:
            raise _RecordError(
                f"label id {high} out of range: the store keeps class ids as int32, "
                f"at most {MAX_CLASSES - 1}"
            )
    return labels


def _check_dim(name: str, dim: int, dims: dict[str, int] | None, modality: str) -> None:
    if dims is not None and modality in dims and dim != dims[modality]:
        raise _RecordError(f"feature '{name}' has {dim} values a frame, expected {dims[modality]}")


def _video_features(
    features: dict[str, Feature], schema: FeatureSchema, dims: dict[str, int] | None,
    half: bool = False,
) -> dict[str, np.ndarray]:
    """``half``: the features are to be stored as float16, so a finite value beyond its
    range, which the cast would turn into infinity, is a fault of the record too."""
    out = {}
    for modality in schema.modalities:
        key = schema.video_key(modality)
        feature = features.get(key)
        if feature is None:
            raise _RecordError(f"feature '{key}' is missing")
        values = feature.float_list
        if values is None:
            raise _RecordError(f"feature '{key}' must be a float list, found {feature.kind}")
        if values.size == 0:
            raise _RecordError(f"feature '{key}' is empty (0 values)")
        if dims is not None and modality in dims and values.size != dims[modality]:
            raise _RecordError(
                f"feature '{key}' has {values.size} values, expected {dims[modality]}"
            )
        if not np.isfinite(values).all():
            raise _RecordError(f"feature '{key}' holds NaN or Inf")
        if half and values.size and float(np.abs(values).max()) >= HALF_OVERFLOW:
            raise _RecordError(
                f"feature '{key}' holds {float(np.abs(values).max()):g}, beyond float16's "
                f"range (65504) of the store; ingest with --float32 to keep it"
            )
        out[modality] = values
    return out


def _frame_features(
    lists: dict[str, np.ndarray | list[Feature]], schema: FeatureSchema, dims: dict[str, int] | None
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for modality in schema.modalities:
        frames = lists.get(modality)
        if frames is None:
            raise _RecordError(f"feature list '{modality}' is missing")
        if not isinstance(frames, np.ndarray):
            frames = _frames_from_features(modality, frames)
        _check_dim(modality, int(frames.shape[1]), dims, modality)
        out[modality] = frames
    counts = {len(frames) for frames in out.values()}
    if len(counts) > 1:
        sizes = ", ".join(f"{m}: {len(f)}" for m, f in out.items())
        raise _RecordError(f"feature lists have different frame counts ({sizes})")
    if counts == {0}:
        raise _RecordError("video has no frames")
    return out


def _frames_from_features(modality: str, features: list[Feature]) -> np.ndarray:
    rows = []
    for feature in features:
        if feature.bytes_list is None or len(feature.bytes_list) != 1:
            raise _RecordError(f"each frame of '{modality}' must be one bytes value")
        rows.append(feature.bytes_list[0])
    if len({len(row) for row in rows}) > 1:
        raise _RecordError(f"frames of '{modality}' have different lengths")
    if not rows:
        return np.zeros((0, 0), np.uint8)
    return np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), -1)


@dataclass
class _Video:
    """One record that passed the scalar checks."""

    video: dict[str, np.ndarray]
    video_id: bytes
    labels: np.ndarray | None


def _check_video(
    features: dict[str, Feature], options: ShardOptions, dims: dict[str, int] | None
) -> _Video:
    """The checks of one video-level record, in the order that decides which fault is
    reported for a record with several: features by modality, then the id, the labels."""
    half = np.dtype(options.video_dtype) == np.float16
    video = _video_features(features, options.schema, dims, half)
    return _Video(video, _id_of(features), _labels_of(features, options.num_classes))


# ---------------------------------------------------------------- video level, vectorised


@dataclass
class _Fast:
    """Records that passed every check, found in bulk; arrays over those records."""

    rows: np.ndarray  # positions among the records decoded, ascending
    id_bytes: np.ndarray  # as in ShardChunk
    id_offsets: np.ndarray
    labelled: np.ndarray
    label_counts: np.ndarray
    labels: np.ndarray  # the labels of every row, one row after another
    video: dict[str, np.ndarray]  # (rows, dim) in ShardOptions.video_dtype
    dims: dict[str, int]


@dataclass
class _Checked:
    """Every check of the records of ``begin:`` but finiteness, and where the fields of
    the records that pass lie in the file."""

    ok: np.ndarray  # bool, a record
    dims: dict[str, int]
    # (4 + modalities, records), meaningful where ok: the id's start and length, the
    # labels' packed payload start and length (-1 where there are none), then the
    # start of each modality's features.
    fields: np.ndarray


def _check_records(spans: RecordSpans, begin: int, options: ShardOptions) -> _Checked:
    """The records that the scan decodes and that pass every check but finiteness when
    each modality has the width of the first such record (or the given dims). In C,
    the scan and the checks in one loop without the GIL, where it was built.

    Where that width is 0 (an empty feature, which the scans accept), no record is
    taken: the scalar checks refuse the empty ones and learn the width from the first
    record that has one."""
    checked = _scan_and_check(spans, begin, options)
    if 0 in checked.dims.values():
        checked.ok[:] = False
    return checked


def _scan_and_check(spans: RecordSpans, begin: int, options: ShardOptions) -> _Checked:
    keys = _scan_keys(options.schema)
    if fastparse.native_examples is None or len(keys) > fastparse.NATIVE_MAX_KEYS:
        return _check_records_numpy(spans, begin, options)
    modalities = options.schema.modalities
    given = options.dims or {}
    dims = np.array([given.get(m, -1) for m in modalities], np.int64)
    n = len(spans) - begin
    ok = np.empty(n, np.uint8)
    fields = np.empty((4 + len(modalities), n), np.int64)
    fastparse.native_examples.examine(
        spans.buf,
        np.ascontiguousarray(spans.start[begin:], np.int64),
        np.ascontiguousarray(spans.end[begin:], np.int64),
        tuple(key.encode() for key in keys),
        len(ID_KEYS),
        MAX_CLASSES if options.num_classes is None else options.num_classes,
        dims,
        ok,
        fields,
    )
    return _Checked(ok.view(bool), dict(zip(modalities, dims.tolist())), fields)


def _check_records_numpy(spans: RecordSpans, begin: int, options: ShardOptions) -> _Checked:
    schema = options.schema
    keys = {m: schema.video_key(m) for m in schema.modalities}
    starts = spans.start[begin:]
    scan = scan_examples(spans.buf, starts, spans.end[begin:], _scan_keys(schema))
    n = len(starts)
    ok = scan.plain.copy()
    fields = np.zeros((4 + len(keys), n), np.int64)
    has_id = np.zeros(n, bool)
    for key in ID_KEYS:  # the first id key present is the one that counts
        span = scan.keys[key]
        here = span.present & ~has_id
        ok &= ~here | (span.kind == BYTES_LIST)
        fields[0, here], fields[1, here] = span.start[here], span.length[here]
        has_id |= here
    ok &= has_id
    labels = scan.keys[LABELS_KEY]
    ok &= ~labels.present | (labels.kind == INT64_LIST)
    if labels.values.size:
        bad = labels.values < 0
        bad |= labels.values >= (options.num_classes or MAX_CLASSES)
        if bad.any():
            ok[np.repeat(np.arange(n), labels.counts)[bad]] = False
    fields[2] = labels.start
    fields[3] = np.where(labels.present, labels.length, -1)
    for key in keys.values():
        ok &= scan.keys[key].kind == FLOAT_LIST
    dims: dict[str, int] = {}
    first = int(np.argmax(ok))
    for i, (m, key) in enumerate(keys.items()):
        width = scan.keys[key].length // 4
        given = options.dims.get(m) if options.dims is not None else None
        dims[m] = given if given is not None else int(width[first]) if ok.any() else 0
        ok &= width == dims[m]
        fields[4 + i] = scan.keys[key].start
    return _Checked(ok, dims, fields)


def _fast_records(
    spans: RecordSpans, begin: int, options: ShardOptions, checked: _Checked | None = None
) -> _Fast:
    """The records of ``begin:`` that pass every check (``_check_records``, unless
    given, then finiteness), gathered."""
    checked = checked or _check_records(spans, begin, options)
    buf = spans.buf
    fields = checked.fields
    rows = np.flatnonzero(checked.ok)
    video = {}
    finite = np.ones(len(rows), bool)
    for i, m in enumerate(options.schema.modalities):
        video[m], finite_m = gather_features(
            buf, fields[4 + i, rows], checked.dims[m], options.video_dtype
        )
        finite &= finite_m
    id_bytes, id_offsets = gather_spans(buf, fields[0, rows], fields[1, rows])
    # Records with a bad id, like those with non-finite features, are left to the
    # general decoder and the scalar checks, which name the fault.
    keep = finite & ~bad_ids(id_bytes, id_offsets)
    if not keep.all():
        rows = rows[keep]
        video = {m: values[keep] for m, values in video.items()}
        id_bytes, id_offsets = gather_spans(buf, fields[0, rows], fields[1, rows])
    label_length = fields[3, rows]
    labels, label_counts, _ = decode_varints(buf, fields[2, rows], np.maximum(label_length, 0))
    return _Fast(
        rows=rows,
        id_bytes=id_bytes,
        id_offsets=id_offsets,
        labelled=label_length >= 0,
        label_counts=label_counts,
        labels=labels,
        video=video,
        dims=checked.dims,
    )


def _video_chunk(
    spans: RecordSpans, begin: int, options: ShardOptions, checked: _Checked | None = None
) -> tuple[ShardChunk, list[BadInputError]]:
    """Decode and check records ``begin:`` of a video-level shard, as checking each
    record in turn would: dims (unless given) are those of the first record that
    passes, records before it are checked without dims, records after it with them.
    ``checked``: ``_check_records`` of the same records, if already made."""
    path = spans.path
    fast = _fast_records(spans, begin, options, checked)
    n = len(spans) - begin
    rest = np.ones(n, bool)
    rest[fast.rows] = False
    faults: dict[int, str] = {}
    decoded: dict[int, dict[str, Feature]] = {}

    def decode(rows: np.ndarray) -> None:
        for row in rows.tolist():
            try:
                decoded[row] = decode_example(spans.payload(begin + row))
            except WireError as err:
                faults[row] = f"malformed record: {err}"

    decode(np.flatnonzero(rest))
    dims = options.dims
    if dims is None:
        # Records before the first good one are checked without dims, and fail.
        first_fast = int(fast.rows[0]) if len(fast.rows) else n
        for row, features in decoded.items():
            if row > first_fast:
                break
            try:
                video = _check_video(features, options, None).video
            except _RecordError as err:
                faults[row] = str(err)
                continue
            dims = {m: int(v.size) for m, v in video.items()}
            break
        if dims is None and first_fast < n:
            dims = fast.dims
    if dims is not None and dims != fast.dims and len(fast.rows):
        # The first good record came through the general decoder with other dims: every
        # fast record after it has the wrong width, and the scalar checks say so.
        decode(fast.rows)
        fast = _Fast(
            np.zeros(0, np.int64),
            np.zeros(0, np.uint8),
            np.zeros(1, np.int64),
            np.zeros(0, bool),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            {m: np.zeros((0, 0), np.float32) for m in fast.video},
            fast.dims,
        )
    good: dict[int, _Video] = {}
    for row, features in sorted(decoded.items()):
        if row not in faults:
            try:
                good[row] = _check_video(features, options, dims)
            except _RecordError as err:
                faults[row] = str(err)
    chunk = _assemble(spans, begin, options, fast, good, dims or {})
    index = spans.index[begin:]
    return chunk, [BadInputError(path, what, int(index[row])) for row, what in faults.items()]


def _assemble(
    spans: RecordSpans,
    begin: int,
    options: ShardOptions,
    fast: _Fast,
    slow: dict[int, _Video],
    dims: dict[str, int],
) -> ShardChunk:
    """The chunk of the good records in file order: the fast records as they are, merged
    with any that went through the general decoder."""
    modalities = options.schema.modalities
    if not slow:
        rows = fast.rows
        id_bytes, id_offsets = fast.id_bytes, fast.id_offsets
        labelled = fast.labelled
        counts = fast.label_counts
        labels = fast.labels
        video = fast.video
    else:
        slow_rows = np.array(sorted(slow), np.int64)
        order = np.argsort(np.concatenate([fast.rows, slow_rows]), kind="stable")
        rows = np.concatenate([fast.rows, slow_rows])[order]
        records = [slow[int(r)] for r in slow_rows]
        no_labels = np.zeros(0, np.int64)
        every_id = [*unpack_ids(fast.id_bytes, fast.id_offsets), *(v.video_id for v in records)]
        id_bytes, id_offsets = pack_ids([every_id[i] for i in order.tolist()])
        labelled = np.concatenate([fast.labelled, [v.labels is not None for v in records]])
        labelled = labelled[order].astype(bool)
        per_row = [
            *np.split(fast.labels, np.cumsum(fast.label_counts)[:-1]),
            *(v.labels if v.labels is not None else no_labels for v in records),
        ]
        if not len(fast.rows):
            per_row = per_row[1:]  # np.split of an empty array gives one empty piece
        counts = np.array([len(per_row[i]) for i in order.tolist()], np.int64)
        labels = np.concatenate([per_row[i] for i in order.tolist()])
        video = {
            m: np.concatenate(
                [fast.video[m].reshape(-1, dims[m]), np.stack([v.video[m] for v in records])]
            )[order]
            for m in modalities
        }
    if not len(rows):
        video = {m: np.zeros((0, dims.get(m, 0)), np.float32) for m in modalities}
    return ShardChunk(
        path=spans.path,
        level="video",
        id_bytes=id_bytes,
        id_offsets=id_offsets,
        label_counts=counts.astype(np.int32),
        label_indices=labels.astype(np.int32),
        labelled=labelled,
        record_indices=spans.index[begin:][rows].astype(np.int32),
        video={m: as_video_dtype(values, options.video_dtype) for m, values in video.items()},
    )


# ---------------------------------------------------------------- frame level


class _ChunkBuilder:
    """Collects decoded records one at a time (frame-level shards hold a few large
    records, whose per-frame work is vectorised already); learns dims from the first."""

    def __init__(self, path: str, level: Level, options: ShardOptions) -> None:
        self.path = path
        self.level = level
        self.options = options
        self.dims = dict(options.dims) if options.dims is not None else None
        self.ids: list[bytes] = []
        self.labels: list[np.ndarray] = []
        self.labelled: list[bool] = []
        self.record_indices: list[int] = []
        self.video: dict[str, list[np.ndarray]] = {m: [] for m in options.schema.modalities}
        self.frames: dict[str, list[np.ndarray]] = {m: [] for m in options.schema.modalities}

    def add(self, index: int, payload: bytes) -> None:
        schema = self.options.schema
        if self.level == "video":
            features = decode_example(payload)
            half = np.dtype(self.options.video_dtype) == np.float16
            video = _video_features(features, schema, self.dims, half)
            frames = None
        else:
            features, lists = decode_sequence_example(payload)
            if not lists:
                raise _RecordError("a video-level Example in a frame-level shard")
            frames = _frame_features(lists, schema, self.dims)
            video = {m: dequantize(f).mean(axis=0, dtype=np.float32) for m, f in frames.items()}
        video_id = _id_of(features)
        labels = _labels_of(features, self.options.num_classes)
        if self.dims is None:
            self.dims = {m: int(v.shape[-1]) for m, v in video.items()}
        self.ids.append(video_id)
        self.labels.append(labels if labels is not None else np.zeros(0, np.int64))
        self.labelled.append(labels is not None)
        self.record_indices.append(index)
        for m, values in video.items():
            self.video[m].append(values)
        if frames is not None:
            for m, values in frames.items():
                self.frames[m].append(values)

    def build(self, skipped: list[BadInputError]) -> ShardChunk:
        n = len(self.ids)
        dims = self.dims or {}
        id_bytes, id_offsets = pack_ids(self.ids)
        chunk = ShardChunk(
            path=self.path,
            level=self.level,
            id_bytes=id_bytes,
            id_offsets=id_offsets,
            label_counts=np.array([len(x) for x in self.labels], np.int32),
            label_indices=(np.concatenate(self.labels) if n else np.zeros(0)).astype(np.int32),
            labelled=np.array(self.labelled, bool),
            record_indices=np.array(self.record_indices, np.int32),
            video={
                m: as_video_dtype(
                    np.stack(v) if v else np.zeros((0, dims.get(m, 0)), np.float32),
                    self.options.video_dtype,
                )
                for m, v in self.video.items()
            },
            skipped=skipped,
        )
        if self.level == "frame":
            first = self.options.schema.modalities[0]
            chunk.frame_counts = np.array([len(f) for f in self.frames[first]], np.int32)
            chunk.frames = {
                m: np.concatenate(f) if f else np.zeros((0, dims.get(m, 0)), np.uint8)
                for m, f in self.frames.items()
            }
        return chunk


def _with_common_dims(
    spans: RecordSpans, begin: int, options: ShardOptions, checked: _Checked
) -> tuple[ShardOptions, _Checked]:
    """Where no more than half of the records pass with the widths of the first that
    passes, that record may be the odd one: the widths most records have are then the
    file's (given as ``dims``), so that one bad record first does not make every good
    record after it a fault."""
    if 2 * int(checked.ok.sum()) > len(checked.ok):
        # Most records have the widths the checks learned: they are the file's, also
        # for the records the general decoder reads (so that one of those first, with
        # other widths, does not set them).
        return replace(options, dims=checked.dims), checked
    schema = options.schema
    scan = scan_examples(spans.buf, spans.start[begin:], spans.end[begin:], _scan_keys(schema))
    dims = {}
    for m in schema.modalities:
        span = scan.keys[schema.video_key(m)]
        usable = scan.plain & (span.kind == FLOAT_LIST) & (span.length >= 4)
        widths = span.length[usable] // 4
        if not widths.size:
            return options, checked
        values, counts = np.unique(widths, return_counts=True)
        dims[m] = int(values[np.argmax(counts)])
    if dims == checked.dims:
        return options, checked
    options = replace(options, dims=dims)
    return options, _check_records(spans, begin, options)


def read_shard(path: str, options: ShardOptions | None = None) -> ShardChunk:
    """Decode and validate every record of one TFRecord shard.

    Raises BadInputError naming the file and record at the first fault, unless
    ``options.skip_corrupt``, in which case bad records are left out and listed in
    ``chunk.skipped`` (a broken frame header or truncation ends the file there).
    """
    options = options or ShardOptions()
    spans = read_spans(path, options.check_crc)
    faults = list(spans.crc_errors)
    level = options.level
    begin = 0
    checked: _Checked | None = None
    # The level is that of the first intact record the general decoder can read. One
    # that passes the checks of the fast path is a plain Example (no feature lists),
    # so video-level: found without the general decoder, which costs more than the
    # checks of the whole file, and the checks are those of the video-level chunk.
    while level is None and begin < len(spans):
        checked = _check_records(spans, begin, options)
        # Most records plain Examples: video-level, whatever the first one is (a stray
        # SequenceExample first must not make the file frame-level and skip the rest).
        if checked.ok[0] or 2 * int(checked.ok.sum()) > len(checked.ok):
            level = "video"
            break
        try:
            level = detect_level(spans.payload(begin))
        except WireError as err:
            faults.append(BadInputError(path, f"malformed record: {err}", int(spans.index[begin])))
            begin += 1
    if level == "video" and options.dims is None and checked is not None:
        options, checked = _with_common_dims(spans, begin, options, checked)
    if level is None:
        chunk = ShardChunk(path=path, level="video")
    elif level == "video":
        chunk, found = _video_chunk(spans, begin, options, checked)
        faults.extend(found)
    else:
        chunk = _frame_chunk(spans, begin, options, faults)
    # In file order, the fault that ended the file last: the order in which checking
    # each record in turn meets them.
    faults.sort(key=lambda err: -1 if err.record is None else err.record)
    if spans.fatal is not None:
        faults.append(spans.fatal)
    if faults and not options.skip_corrupt:
        raise faults[0]
    chunk.skipped = faults
    chunk.identity = spans.identity
    return chunk


def _frame_chunk(
    spans: RecordSpans, begin: int, options: ShardOptions, faults: list[BadInputError]
) -> ShardChunk:
    builder = _ChunkBuilder(spans.path, "frame", options)
    for i in range(begin, len(spans)):
        index = int(spans.index[i])
        try:
            builder.add(index, spans.payload(i))
        except (_RecordError, WireError) as err:
            what = str(err) if isinstance(err, _RecordError) else f"malformed record: {err}"
            faults.append(BadInputError(spans.path, what, index))
    return builder.build([])
