"""One TFRecord shard of YouTube-8M records decoded and validated into numpy arrays.

This is the unit of work of ingest: a worker turns one file into a ``ShardChunk`` and
the store writer appends chunks in file order. Every check that can be made on one
record is made here, so that an error names the file and the record; checks across
files (duplicate ids, one level and one set of dimensions for the whole store) are
the writer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from yt8mkit.data.example import Feature, WireError, decode_example, decode_sequence_example
from yt8mkit.data.quantize import dequantize
from yt8mkit.data.schema import ID_KEYS, LABELS_KEY, FeatureSchema
from yt8mkit.data.tfrecord import TFRecordReader
from yt8mkit.errors import BadInputError

Level = Literal["video", "frame"]


@dataclass
class ShardChunk:
    """The valid records of one shard, in file order."""

    path: str
    level: Level
    ids: list[bytes] = field(default_factory=list)
    label_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    label_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    labelled: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # index of each video's record in the file (differs from position when records are skipped)
    record_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    # modality -> (videos, dim) float32: the record's mean_* features, or for frame-level
    # records the mean of the dequantized frames, as the dataset defines video features.
    video: dict[str, np.ndarray] = field(default_factory=dict)
    frame_counts: np.ndarray | None = None
    # modality -> (all frames of the shard, dim) uint8, videos one after another.
    frames: dict[str, np.ndarray] | None = None
    skipped: list[BadInputError] = field(default_factory=list)

    @property
    def num_videos(self) -> int:
        return len(self.ids)

    @property
    def dims(self) -> dict[str, int]:
        return {name: int(values.shape[1]) for name, values in self.video.items()}


@dataclass(frozen=True)
class ShardOptions:
    """What a shard must look like. ``dims`` and ``level`` None mean: learn them from
    the first record, then hold every later record to them."""

    schema: FeatureSchema = field(default_factory=FeatureSchema)
    dims: dict[str, int] | None = None
    level: Level | None = None
    num_classes: int | None = None
    check_crc: bool = True
    skip_corrupt: bool = False


def detect_level(payload: bytes) -> Level:
    """A SequenceExample carries feature lists (field 2); an Example does not."""
    _, lists = decode_sequence_example(payload)
    return "frame" if lists else "video"


class _RecordError(Exception):
    """A record-level fault; turned into BadInputError with the file and index."""


def _id_of(features: dict[str, Feature]) -> bytes:
    for key in ID_KEYS:
        feature = features.get(key)
        if feature is not None:
            if feature.bytes_list is None or len(feature.bytes_list) != 1:
                raise _RecordError(f"'{key}' must hold exactly one bytes value")
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
    return labels


def _check_dim(name: str, dim: int, dims: dict[str, int] | None, modality: str) -> None:
    if dims is not None and modality in dims and dim != dims[modality]:
        raise _RecordError(f"feature '{name}' has {dim} values a frame, expected {dims[modality]}")


def _video_features(
    features: dict[str, Feature], schema: FeatureSchema, dims: dict[str, int] | None
) -> dict[str, np.ndarray]:
    out = {}
    for modality in schema.modalities:
        key = schema.video_key(modality)
        feature = features.get(key)
        if feature is None:
            raise _RecordError(f"feature '{key}' is missing")
        values = feature.float_list
        if values is None:
            raise _RecordError(f"feature '{key}' must be a float list, found {feature.kind}")
        if dims is not None and modality in dims and values.size != dims[modality]:
            raise _RecordError(
                f"feature '{key}' has {values.size} values, expected {dims[modality]}"
            )
        if not np.isfinite(values).all():
            raise _RecordError(f"feature '{key}' holds NaN or Inf")
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


class _ChunkBuilder:
    """Collects decoded records; learns dims from the first one when not given."""

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
            video = _video_features(features, schema, self.dims)
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
        chunk = ShardChunk(
            path=self.path,
            level=self.level,
            ids=self.ids,
            label_counts=np.array([len(x) for x in self.labels], np.int32),
            label_indices=(np.concatenate(self.labels) if n else np.zeros(0)).astype(np.int32),
            labelled=np.array(self.labelled, bool),
            record_indices=np.array(self.record_indices, np.int32),
            video={
                m: np.stack(v) if v else np.zeros((0, dims.get(m, 0)), np.float32)
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


def read_shard(path: str, options: ShardOptions | None = None) -> ShardChunk:
    """Decode and validate every record of one TFRecord shard.

    Raises BadInputError naming the file and record at the first fault, unless
    ``options.skip_corrupt``, in which case bad records are left out and listed in
    ``chunk.skipped`` (a broken frame header or truncation ends the file there).
    """
    options = options or ShardOptions()
    skipped: list[BadInputError] = []
    builder: _ChunkBuilder | None = None
    errors = skipped if options.skip_corrupt else None
    with TFRecordReader(path, options.check_crc, errors=errors) as reader:
        for index, payload in reader.indexed():
            try:
                if builder is None:
                    level = options.level or detect_level(payload)
                    builder = _ChunkBuilder(path, level, options)
                builder.add(index, payload)
            except (_RecordError, WireError) as err:
                what = str(err) if isinstance(err, _RecordError) else f"malformed record: {err}"
                bad = BadInputError(path, what, index)
                if not options.skip_corrupt:
                    raise bad from None
                skipped.append(bad)
    if builder is None:
        return ShardChunk(path=path, level=options.level or "video", skipped=skipped)
    return builder.build(skipped)
