"""Parquet embeddings (pyarrow): one unit a row group, so memory holds a few row groups.

Layouts, told apart by the modality columns' types:

- video-level: one row a video; each modality a ``list<float>`` (or large or
  fixed-size list) column of its width;
- frame-level, one row a video: each modality a list of lists (``list<list<float>>``,
  inner lists fixed-size or not), a frame each;
- frame-level, one row a frame (``--level frame`` with flat lists): a video's rows one
  after another, in frame order. A unit is then the videos that *start* in its row
  group: it reads on into the next row groups to finish its last video, and skips the
  rows that finish the previous group's. Every unit so stands alone (a resume can
  start at any), and the labels are those of a video's first row (others must agree).

The id column may hold strings, bytes or integers; the labels column (optional) lists
of integers, or of names mapped through ``--vocabulary``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yt8mkit.data.embeddings import (
    PARQUET_SUFFIXES,
    EmbeddingOptions,
    Labels,
    PackedIds,
    RawRows,
    Unit,
    UnitIdentity,
    check_modality_name,
)
from yt8mkit.data.sources import find_sources, resolved_paths
from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.errors import BadInputError

Layout = Literal["video", "nested", "rows"]  # video-level; list of lists; a row a frame


def find_parquet_files(sources: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files as given, folders expanded to their Parquet files, globs expanded."""
    return find_sources(sources, PARQUET_SUFFIXES)[0]


def _one(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its chunk where it has one (``combine_chunks`` copies
    even then: a row group's features, for nothing)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _kind(t: pa.DataType) -> tuple[str, int | None] | None:
    """("flat" | "nested", fixed width or None) of a modality column's type, else None."""
    if not _is_list(t):
        return None
    inner = t.value_type
    width = t.list_size if pa.types.is_fixed_size_list(t) else None
    if pa.types.is_floating(inner):
        return "flat", width
    if _is_list(inner) and pa.types.is_floating(inner.value_type):
        return "nested", inner.list_size if pa.types.is_fixed_size_list(inner) else None
    return None


def _lists(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Each row's length (0 where null), whether it is null, and the values of the
    non-null rows one after another."""
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy().astype(np.int64)
    null = arr.is_null().to_numpy(zero_copy_only=False)
    return lengths, null, arr.flatten()


def _matrix(arr: pa.Array, width: int, what: str) -> tuple[np.ndarray, dict[int, str]]:
    """(rows, width) float32 of a list column, and the fault of each row that is null or
    of another width (its row in the matrix is zeros). Null values become NaN, which the
    finiteness check refuses."""
    lengths, null, values = _lists(arr)
    flat = values.to_numpy(zero_copy_only=False)
    flat = flat.astype(np.float32, copy=False)
    n = len(arr)
    good = (lengths == width) & ~null
    if good.all():
        return flat.reshape(n, width), {}
    faults = {int(i): f"{what} is null" for i in np.flatnonzero(null)}
    for i in np.flatnonzero(~good & ~null).tolist():
        faults[i] = f"{what} has {int(lengths[i])} values, expected {width}"
    out = np.zeros((n, width), np.float32)
    starts = np.cumsum(lengths) - lengths
    out[good] = flat[starts[good][:, None] + np.arange(width)]
    return out, faults


def _ids(col: pa.Array) -> list | PackedIds:
    if not col.null_count and (pa.types.is_string(col.type) or pa.types.is_binary(col.type)
                               or pa.types.is_large_string(col.type)
                               or pa.types.is_large_binary(col.type)):
        # The column's offsets and bytes are the packed ids already: no Python object each.
        _, offsets_buffer, data = col.buffers()
        width = np.int64 if pa.types.is_large_string(col.type) or pa.types.is_large_binary(
            col.type) else np.int32
        offsets = np.frombuffer(offsets_buffer, width)[col.offset: col.offset + len(col) + 1]
        blob = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        return PackedIds(blob[offsets[0]:offsets[-1]].copy(),
                         (offsets - offsets[0]).astype(np.int64))
    if pa.types.is_integer(col.type):
        return [None if v is None else str(v) for v in col.to_pylist()]
    return col.to_pylist()


def _labels(col: pa.Array | None, what: str) -> tuple[Labels | None, dict[int, str]]:
    if col is None:
        return None, {}
    lengths, null, values = _lists(col)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    faults = {}
    if values.null_count:
        owner = np.repeat(np.arange(len(col)), lengths)
        for i in np.unique(owner[values.is_null().to_numpy(zero_copy_only=False)]).tolist():
            faults[int(i)] = f"'{what}' holds a null label"
        values = values.fill_null(0 if pa.types.is_integer(values.type) else "")
    if pa.types.is_integer(values.type):
        array = values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    else:
        array = np.asarray(values.to_pylist(), dtype=object)
        if array.dtype != object:
            array = array.astype(object)
    return Labels(offsets, array, ~null), faults


def _identity(path: str, cache: dict[str, tuple[tuple[int, int], dict]]) -> dict:
    """Size, mtime and a CRC of the footer (row groups' sizes, offsets, statistics):
    what a resume checks before trusting what it appended from this file. The footer is
    read again only when the size or mtime changed (a unit a row group: thousands)."""
    stat = os.stat(path)
    known = cache.get(path)
    if known is not None and known[0] == (stat.st_size, stat.st_mtime_ns):
        return known[1]
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        f.seek(max(stat.st_size - 8, 0))
        tail = f.read(8)
        length = int.from_bytes(tail[:4], "little") if len(tail) == 8 else 0
        f.seek(max(stat.st_size - 8 - length, 0))
        footer = f.read(length + 8)
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "footer_crc32c": google_crc32c.value(footer)}
    cache[path] = ((stat.st_size, stat.st_mtime_ns), identity)
    return identity


class ParquetSource:
    """Parquet files read row group by row group (see the module's docstring)."""

    sequential = False

    def __init__(self, sources: Sequence[str | os.PathLike[str]], options: EmbeddingOptions,
                 vocabulary: Vocabulary | None) -> None:
        self.options = options
        self.files = find_parquet_files(sources)
        self.paths = resolved_paths(self.files)
        self.folders = [str(s) for s in sources if os.path.isdir(s)]
        self._row_starts: list[np.ndarray] = []  # first row of each row group, a file
        self._units: list[Unit] = []
        self._where: list[tuple[int, int]] = []  # unit -> (file, row group)
        self._identities: dict[str, tuple[tuple[int, int], dict]] = {}
        schema = None
        for i, file in enumerate(self.files):
            meta = self._metadata(file)
            if schema is None:
                schema = meta.schema.to_arrow_schema()
                self._plan(file, schema)
            else:
                self._check_same(file, meta.schema.to_arrow_schema())
            sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            self._row_starts.append(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
            for g in range(meta.num_row_groups):
                self._where.append((i, g))
                self._units.append(Unit(file, len(self._units)))
        self.dims = self._widths()

    # ------------------------------------------------------------ the layout

    @staticmethod
    def _metadata(file: str) -> pq.FileMetaData:
        try:
            return pq.ParquetFile(file).metadata
        except (pa.ArrowException, OSError) as err:
            raise BadInputError(file, f"not a readable Parquet file ({err})") from None

    def _plan(self, file: str, schema: pa.Schema) -> None:
        o = self.options
        names = schema.names
        if o.id_column not in names:
            raise BadInputError(file, f"no id column {o.id_column!r} (columns: {names}); "
                                      f"name it with --id-column")
        id_type = schema.field(o.id_column).type
        if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)
                or pa.types.is_binary(id_type) or pa.types.is_large_binary(id_type)
                or pa.types.is_integer(id_type)):
            raise BadInputError(file, f"id column {o.id_column!r} is {id_type}: it must hold "
                                      f"strings, bytes or integers")
        if o.labels_column is not None and o.labels_column not in names:
            raise BadInputError(file, f"no labels column {o.labels_column!r} (columns: "
                                      f"{names})")
        wanted = o.labels_column or "labels"
        self.labels_column = wanted if wanted in names else None
        if self.labels_column is not None:
            t = schema.field(self.labels_column).type
            # list<null>: pyarrow's type of lists that are all empty
            if not (_is_list(t) and (pa.types.is_integer(t.value_type)
                                     or pa.types.is_null(t.value_type)
                                     or pa.types.is_string(t.value_type)
                                     or pa.types.is_large_string(t.value_type))):
                raise BadInputError(file, f"labels column {self.labels_column!r} is {t}: it "
                                          f"must be a list of integers or of names")
        if o.modalities is not None:
            missing = [m for m in o.modalities if m not in names]
            if missing:
                raise BadInputError(file, f"no column {missing} (columns: {names})")
            modalities = list(o.modalities)
        else:
            modalities = [n for n in names if n not in (o.id_column, self.labels_column)
                          and _kind(schema.field(n).type) is not None]
            if not modalities:
                raise BadInputError(file, f"no feature column: a modality is a column of "
                                          f"lists of floats (columns: {names})")
        kinds = {}
        for m in modalities:
            check_modality_name(m, f"{file}: column")
            kind = _kind(schema.field(m).type)
            if kind is None:
                raise BadInputError(file, f"column {m!r} is {schema.field(m).type}: a "
                                          f"modality must be a list of floats (a video) or a "
                                          f"list of lists of floats (its frames)")
            kinds[m] = kind
        nested = {m for m, (k, _) in kinds.items() if k == "nested"}
        if nested and len(nested) != len(kinds):
            raise BadInputError(file, f"columns {sorted(nested)} hold lists of frames and the "
                                      f"others one list a row: one layout for all")
        if nested:
            if o.level == "video":
                raise BadInputError(file, "--level video, but the columns hold frames "
                                          "(lists of lists)")
            self.layout: Layout = "nested"
        else:
            self.layout = "rows" if o.level == "frame" else "video"
        self.level: Literal["video", "frame"] = "video" if self.layout == "video" else "frame"
        self.modalities = modalities
        self._fixed = {m: w for m, (_, w) in kinds.items()}
        self._schema = schema

    def _check_same(self, file: str, schema: pa.Schema) -> None:
        for name in [self.options.id_column, *self.modalities,
                     *([self.labels_column] if self.labels_column else [])]:
            if name not in schema.names:
                raise BadInputError(file, f"no column {name!r}, which {self.files[0]} has")
            if schema.field(name).type != self._schema.field(name).type:
                raise BadInputError(file, f"column {name!r} is {schema.field(name).type}, in "
                                          f"{self.files[0]} {self._schema.field(name).type}")

    def _widths(self) -> dict[str, int]:
        """Fixed-size lists give the width; else the width most rows (frames) of the
        first row group have, so that one odd row does not decide it."""
        dims = {}
        for m in self.modalities:
            if self._fixed[m] is not None:
                dims[m] = int(self._fixed[m])  # type: ignore[arg-type]
                continue
            width = None
            for file in self.files:
                pf = pq.ParquetFile(file)
                for g in range(pf.metadata.num_row_groups):
                    col = _one(pf.read_row_group(g, columns=[m]).column(0))
                    if self.layout == "nested":
                        col = col.flatten()
                    lengths, null, _ = _lists(col)
                    common = Counter(lengths[~null & (lengths > 0)].tolist()).most_common(1)
                    if common:
                        width = common[0][0]
                        break
                if width is not None:
                    break
            if width is None:
                raise BadInputError(self.files[0], f"column {m!r} holds no values: its width "
                                                   f"cannot be known")
            dims[m] = int(width)
        return dims

    # ------------------------------------------------------------ units

    def units(self) -> list[Unit]:
        return list(self._units)

    def identity(self, unit: Unit) -> UnitIdentity:
        file, group = self._where[unit.index]
        return UnitIdentity({**_identity(self.paths[file], self._identities), "row_group": group})

    def _columns(self) -> list[str]:
        return [self.options.id_column, *([self.labels_column] if self.labels_column else []),
                *self.modalities]

    def read(self, unit: Unit) -> RawRows:
        file, group = self._where[unit.index]
        identity = self.identity(unit)
        pf = pq.ParquetFile(self.files[file])  # read into memory: a map would grow the RSS
        first_row = int(self._row_starts[file][group])
        if self.layout == "rows":
            raw = self._read_frame_rows(pf, file, group)
        else:
            table = pf.read_row_group(group, columns=self._columns())
            raw = self._read_videos(table, first_row, self.files[file])
        raw.identity = identity
        return raw

    def _read_videos(self, table: pa.Table, first_row: int, path: str) -> RawRows:
        o = self.options
        cols = {name: _one(table.column(name)) for name in table.column_names}
        n = table.num_rows
        labels, faults = _labels(cols.get(self.labels_column or ""), self.labels_column or "")
        features: dict[str, np.ndarray] = {}
        counts = None
        mismatch = np.zeros(n, bool)
        per_modality_counts = {}
        for m in self.modalities:
            if self.layout == "video":
                features[m], bad = _matrix(cols[m], self.dims[m], f"feature '{m}'")
                _merge(faults, bad)
                continue
            lengths, null, frames = _lists(cols[m])
            for i in np.flatnonzero(null).tolist():
                faults.setdefault(i, f"feature '{m}' is null")
            values, bad = _matrix(frames, self.dims[m], f"a frame of '{m}'")
            owner = np.repeat(np.arange(n), lengths)
            for frame, what in bad.items():
                faults.setdefault(int(owner[frame]), what)
            features[m] = values
            per_modality_counts[m] = lengths
            if counts is None:
                counts = lengths
            mismatch |= lengths != counts
        if counts is not None and mismatch.any():
            for i in np.flatnonzero(mismatch).tolist():
                sizes = ", ".join(f"{m}: {int(c[i])}" for m, c in per_modality_counts.items())
                faults.setdefault(i, f"feature lists have different frame counts ({sizes})")
            for m, c in per_modality_counts.items():
                features[m] = features[m][np.repeat(~mismatch, c)]
            counts = np.where(mismatch, 0, counts)
        return RawRows(path=path, rows=first_row + np.arange(n, dtype=np.int64),
                       ids=_ids(cols[o.id_column]), labels=labels, features=features,
                       frame_counts=counts, faults=faults)

    def _read_frame_rows(self, pf: pq.ParquetFile, file: int, group: int) -> RawRows:
        """The videos that start in row group ``group`` (one row a frame)."""
        id_name = self.options.id_column
        columns = self._columns()
        table = pf.read_row_group(group, columns=columns)
        previous = _last_id_before(pf, group, id_name)
        skip = _leading_run(_one(table.column(id_name)), previous)
        table = table.slice(skip)
        pieces = [table]
        if table.num_rows:
            last = table.column(id_name)[-1].as_py()
            for g in range(group + 1, pf.metadata.num_row_groups):
                following = pf.read_row_group(g, columns=columns)
                run = _leading_run(_one(following.column(id_name)), last)
                pieces.append(following.slice(0, run))
                if run < following.num_rows:
                    break
        table = pa.concat_tables(pieces)
        first_row = int(self._row_starts[file][group]) + skip
        cols = {name: _one(table.column(name)) for name in table.column_names}
        ids = cols[id_name]
        n = len(ids)
        change = np.ones(max(n - 1, 0), bool)
        if n > 1:
            change = ~pc.equal(ids.slice(1), ids.slice(0, n - 1)).fill_null(False).to_numpy(
                zero_copy_only=False)
        starts = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64) if n \
            else np.zeros(0, np.int64)
        counts = np.diff(np.append(starts, n)).astype(np.int64)
        owner = np.repeat(np.arange(len(starts)), counts)
        faults: dict[int, str] = {}
        features = {}
        for m in self.modalities:
            values, bad = _matrix(cols[m], self.dims[m], f"frame feature '{m}'")
            for row, what in sorted(bad.items()):
                faults.setdefault(int(owner[row]), f"{what} (row {first_row + row})")
            features[m] = values
        labels = None
        if self.labels_column is not None:
            row_labels, bad = _labels(cols[self.labels_column], self.labels_column)
            for row, what in sorted(bad.items()):
                faults.setdefault(int(owner[row]), what)
            labels = _first_row_labels(row_labels, starts, owner, faults, first_row)
        return RawRows(path=self.files[file], rows=first_row + starts,
                       ids=_ids(ids.take(pa.array(starts))), labels=labels,
                       features=features, frame_counts=counts, faults=faults)


def _last_id_before(pf: pq.ParquetFile, group: int, id_name: str) -> object:
    """The id of the last row before row group ``group`` (None at the file's start)."""
    for g in range(group - 1, -1, -1):
        col = pf.read_row_group(g, columns=[id_name]).column(0)
        if len(col):
            return col[-1].as_py()
    return None


def _leading_run(ids: pa.Array, value: object) -> int:
    """How many rows from the first hold the id ``value``."""
    if value is None or not len(ids):
        return 0
    same = pc.equal(ids, pa.scalar(value, ids.type)).fill_null(False).to_numpy(
        zero_copy_only=False)
    return len(same) if same.all() else int(np.argmin(same))


def _first_row_labels(rows: Labels, starts: np.ndarray, owner: np.ndarray,
                      faults: dict[int, str], first_row: int) -> Labels:
    """A video's labels are its first row's; a later row that holds labels must hold the
    same (null is allowed: labels written once a video)."""
    lengths = np.diff(rows.offsets)
    head = starts[owner]  # the first row of each row's video
    later = rows.present & (np.arange(len(owner)) != head)
    differ = later & (lengths != lengths[head])
    same_length = np.flatnonzero(later & ~differ)
    if same_length.size:
        span = lengths[same_length]
        within = np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
        a = np.repeat(rows.offsets[same_length], span) + within
        b = np.repeat(rows.offsets[head[same_length]], span) + within
        unequal = rows.values[a] != rows.values[b]
        differ[same_length[np.unique(np.repeat(np.arange(len(same_length)), span)[unequal])]] \
            = True
    for row in np.flatnonzero(differ).tolist():
        faults.setdefault(int(owner[row]), f"labels of row {first_row + row} differ from those "
                                           f"of the video's first row")
    span = lengths[starts]
    within = np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
    take = np.repeat(rows.offsets[starts], span) + within
    return Labels(np.concatenate([[0], np.cumsum(span)]).astype(np.int64), rows.values[take],
                  rows.present[starts])


def _merge(faults: dict[int, str], more: dict[int, str]) -> None:
    for k, v in more.items():
        faults.setdefault(k, v)
