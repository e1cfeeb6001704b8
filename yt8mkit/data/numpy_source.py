"""NumPy embeddings: a folder of ``NAME.npy`` arrays (or one ``.npz`` of them), an ids
file and an optional labels file, read a block of videos at a time.

    embeddings/
        clip.npy        (videos, 512) float: a modality named clip, video-level
        clap.npy        (videos, 128)
        ids.txt         one video id a line
        labels.jsonl    one JSON list a line: [3, 17] or ["Guitar", "Piano"] (null: none)
                        (or labels.txt: integers separated by spaces, a line a video)

Frame-level: ``frame_counts.npy`` (videos,) beside (frames, dim) arrays that hold every
video's frames one after another, or 3-D (videos, frames, dim) arrays.

``.npy`` files and the uncompressed members of an ``.npz`` (``np.savez``) are memory
mapped, so a block costs only its own rows; a compressed ``.npz``
(``np.savez_compressed``) is decompressed as a stream, in order, in one thread.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal

import numpy as np
import numpy.lib.format as npformat

from yt8mkit.data.embeddings import (
    EmbeddingOptions,
    Labels,
    RawRows,
    Unit,
    UnitIdentity,
    check_modality_name,
)
from yt8mkit.data.sources import resolved_paths
from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.errors import BadInputError

FRAME_COUNTS = "frame_counts"


class _Array:
    """Rows of one array, from a memory map or a decompressing stream."""

    def __init__(self, name: str, where: str, shape: tuple[int, ...], dtype: np.dtype,
                 fortran: bool, mapped: np.ndarray | None = None,
                 stream: tuple[str, str] | None = None) -> None:
        self.name, self.where = name, where
        self.shape, self.dtype, self.fortran = shape, dtype, fortran
        self.mapped = mapped
        self._stream_of = stream  # (npz path, member) of a compressed member
        self._stream: IO[bytes] | None = None
        self._cursor = 0
        self._lock = threading.Lock()

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def rows(self, start: int, stop: int) -> np.ndarray:
        if self.mapped is not None:
            return np.ascontiguousarray(self.mapped[start:stop])
        with self._lock:
            if self._stream is None or self._cursor > start:
                self._open()
            stream = self._stream
            assert stream is not None
            _skip(stream, (start - self._cursor) * self.row_bytes)
            data = stream.read((stop - start) * self.row_bytes)
            self._cursor = stop
        if len(data) != (stop - start) * self.row_bytes:
            raise BadInputError(self.where, f"array '{self.name}' is truncated")
        return np.frombuffer(data, self.dtype).reshape((stop - start, *self.shape[1:]))

    def _open(self) -> None:
        assert self._stream_of is not None
        if self._stream is not None:
            self._stream.close()
        path, member = self._stream_of
        # Kept open between blocks (reads go on where the last one stopped).
        stream = zipfile.ZipFile(path).open(member)  # noqa: SIM115
        _read_header(stream)
        self._stream, self._cursor = stream, 0


def _skip(stream: IO[bytes], count: int) -> None:
    while count > 0:
        got = stream.read(min(count, 1 << 24))
        if not got:
            return
        count -= len(got)


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The .npy header (format 1.0 or 2.0, what ``np.save`` writes); ``f`` left at the data."""
    version = npformat.read_magic(f)
    if version == (1, 0):
        return npformat.read_array_header_1_0(f)
    if version == (2, 0):
        return npformat.read_array_header_2_0(f)
    raise ValueError(f".npy format version {version} (1.0 and 2.0 are read)")


def _header(f: IO[bytes], where: str, name: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    try:
        shape, fortran, dtype = _read_header(f)
    except ValueError as err:
        raise BadInputError(where, f"array '{name}' is not a NumPy array ({err})") from None
    return tuple(shape), np.dtype(dtype), bool(fortran)


def _npy(path: Path) -> _Array:
    with open(path, "rb") as f:
        shape, dtype, fortran = _header(f, str(path), path.stem)
    mapped = np.load(path, mmap_mode="r", allow_pickle=False) if 0 not in shape else \
        np.zeros(shape, dtype)
    return _Array(path.stem, str(path), shape, dtype, fortran, mapped=mapped)


def _npz(path: Path) -> list[_Array]:
    """Each member; stored ones memory mapped at their offset in the zip file."""
    out = []
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise BadInputError(str(path), f"not an .npz archive ({err})") from None
    with archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            with archive.open(info) as member:
                shape, dtype, fortran = _header(member, str(path), name)
            if info.compress_type == zipfile.ZIP_STORED and 0 not in shape:
                # The local header: 30 bytes, then the name and the extra field.
                raw.seek(info.header_offset)
                local = raw.read(30)
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                raw.seek(info.header_offset + 30 + name_len + extra_len)
                _header(raw, str(path), name)
                mapped = np.memmap(path, dtype, "r", raw.tell(), shape,
                                   order="F" if fortran else "C")
                out.append(_Array(name, str(path), shape, dtype, fortran, mapped=mapped))
            else:
                out.append(_Array(name, str(path), shape, dtype, fortran,
                                  stream=(str(path), info.filename)))
    return out


class _Lines:
    """A text file of one entry a line, read a block of lines at a time: one pass at the
    start finds where every ``every``-th line begins (memory: a few numbers a block)."""

    def __init__(self, path: Path, every: int) -> None:
        self.path = path
        self.every = every
        starts = [0]
        count = 0
        position = 0
        last = b"\n"
        try:
            with open(path, "rb") as f:
                while block := f.read(1 << 22):
                    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
                    numbers = count + 1 + np.arange(len(ends))  # of the lines they end
                    starts.extend((position + ends[numbers % every == 0] + 1).tolist())
                    count += len(ends)
                    position += len(block)
                    last = block[-1:]
        except OSError as err:
            raise BadInputError(str(path), f"cannot read ({err.strerror})") from None
        if last != b"\n":  # a last line without its newline
            count += 1
        self.count = count
        self.size = position
        self.starts = starts

    def block(self, index: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.starts[index])
            stop = self.starts[index + 1] if index + 1 < len(self.starts) else self.size
            return f.read(stop - self.starts[index])

    @staticmethod
    def split(data: bytes) -> list[bytes]:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]


class NumpySource:
    """A folder of ``.npy`` arrays or an ``.npz`` (see the module's docstring)."""

    def __init__(self, sources: Sequence[str | os.PathLike[str]], options: EmbeddingOptions,
                 vocabulary: Vocabulary | None) -> None:
        if len(sources) != 1:
            raise BadInputError(", ".join(map(str, sources)),
                                "NumPy input is one folder of .npy arrays or one .npz file")
        self.options = options
        source = Path(sources[0])
        self.where = str(source)
        if source.is_dir():
            folder = source
            arrays = [_npy(p) for p in sorted(source.glob("*.npy"))]
            if not arrays:
                npz = sorted(source.glob("*.npz"))
                if len(npz) != 1:
                    raise BadInputError(self.where, "folder holds no .npy arrays (and not one "
                                                    ".npz)")
                arrays = _npz(npz[0])
        else:
            folder = source.parent
            arrays = _npz(source) if source.suffix.lower() == ".npz" else [_npy(source)]
        by_name = {a.name: a for a in arrays}
        counts = by_name.pop(FRAME_COUNTS, None)
        names = options.modalities or list(by_name)
        missing = [m for m in names if m not in by_name]
        if missing:
            raise BadInputError(self.where, f"no array {missing} (arrays: {list(by_name)})")
        if not names:
            raise BadInputError(self.where, "no feature arrays")
        self.arrays = {m: by_name[m] for m in names}
        for m, a in self.arrays.items():
            check_modality_name(m, f"{a.where}: array")
            if a.dtype.kind != "f":
                raise BadInputError(a.where, f"array '{m}' is {a.dtype}: features must be "
                                             f"floats")
            if len(a.shape) not in (2, 3):
                raise BadInputError(a.where, f"array '{m}' has shape {a.shape}: (videos, dim), "
                                             f"(frames, dim) with frame_counts, or (videos, "
                                             f"frames, dim)")
        ids_path = Path(options.ids_file) if options.ids_file else folder / "ids.txt"
        if not ids_path.is_file():
            raise BadInputError(str(ids_path), "no ids file (one video id a line); give --ids")
        self.ids = _Lines(ids_path, options.rows_per_unit)
        n = self.ids.count
        self._frame_layout(counts, n)
        self.labels: _Lines | None = None
        self.labels_kind: Literal["jsonl", "txt"] = "jsonl"
        labels_path = Path(options.labels_file) if options.labels_file else next(
            (p for p in (folder / "labels.jsonl", folder / "labels.txt") if p.is_file()), None)
        if labels_path is not None:
            if not labels_path.is_file():
                raise BadInputError(str(labels_path), "no such labels file")
            self.labels = _Lines(labels_path, options.rows_per_unit)
            self.labels_kind = "txt" if labels_path.suffix.lower() == ".txt" else "jsonl"
            if self.labels.count != n:
                raise BadInputError(str(labels_path), f"{self.labels.count:,} lines, but "
                                                      f"{ids_path} has {n:,} ids")
        self.dims = {m: int(a.shape[-1]) for m, a in self.arrays.items()}
        self.sequential = any(a.mapped is None for a in self.arrays.values()) or (
            self.counts is not None and self.counts.mapped is None)
        files = sorted({a.where for a in self.arrays.values()} | {str(ids_path)} | (
            {str(labels_path)} if labels_path else set()))
        self.paths = resolved_paths(files)
        self.folders = [self.where] if source.is_dir() else []
        self._files = files
        self.num_videos = n
        step = options.rows_per_unit
        self._units = [Unit(self.where, i) for i in range((n + step - 1) // step)]

    def _frame_layout(self, counts: _Array | None, n: int) -> None:
        self.counts = counts
        self.offsets: np.ndarray | None = None
        three_d = {len(a.shape) == 3 for a in self.arrays.values()}
        if len(three_d) > 1:
            raise BadInputError(self.where, "arrays of 2 and 3 dimensions mixed")
        self.three_d = three_d == {True}
        level = self.options.level
        if self.three_d or counts is not None:
            if level == "video":
                raise BadInputError(self.where, "--level video, but the arrays hold frames")
            self.level: Literal["video", "frame"] = "frame"
        else:
            if level == "frame":
                raise BadInputError(self.where, "--level frame, but there is no "
                                                "frame_counts.npy and the arrays are 2-D")
            self.level = "video"
        if counts is not None:
            if self.three_d:
                raise BadInputError(self.where, "frame_counts with 3-D arrays: one or the other")
            if counts.dtype.kind not in "iu" or counts.shape != (n,):
                raise BadInputError(counts.where, f"frame_counts is {counts.dtype} of shape "
                                                  f"{counts.shape}: it must be ({n},) integers, "
                                                  f"a count for each id")
            # Offsets of every block's first frame: one pass over the counts.
            step = self.options.rows_per_unit
            sums = [0]
            for start in range(0, n, step):
                block = counts.rows(start, min(start + step, n)).astype(np.int64)
                if (block < 0).any():
                    row = start + int(np.flatnonzero(block < 0)[0])
                    raise BadInputError(counts.where, f"frame count {int(block.min())} is "
                                                      f"negative", row)
                sums.append(sums[-1] + int(block.sum()))
            self.offsets = np.array(sums, np.int64)
            total = int(self.offsets[-1])
        for m, a in self.arrays.items():
            want = n if counts is None else total
            if a.shape[0] != want:
                what = "ids" if counts is None else "frames (the sum of frame_counts)"
                raise BadInputError(a.where, f"array '{m}' has {a.shape[0]:,} rows, but there "
                                             f"are {want:,} {what}")

    def units(self) -> list[Unit]:
        return list(self._units)

    def _span(self, unit: Unit) -> tuple[int, int]:
        start = unit.index * self.options.rows_per_unit
        return start, min(start + self.options.rows_per_unit, self.num_videos)

    def _load(self, unit: Unit) -> tuple[dict[str, np.ndarray], np.ndarray | None, bytes,
                                         bytes | None, UnitIdentity]:
        start, stop = self._span(unit)
        counts = None
        if self.counts is not None and self.offsets is not None:
            counts = self.counts.rows(start, stop).astype(np.int64)
            first = int(self.offsets[unit.index])
            frames = (first, first + int(counts.sum()))
            values = {m: a.rows(*frames) for m, a in self.arrays.items()}
        else:
            values = {m: a.rows(start, stop) for m, a in self.arrays.items()}
        ids = self.ids.block(unit.index)
        labels = self.labels.block(unit.index) if self.labels is not None else None
        crc = 0
        for part in [*(np.ascontiguousarray(v).view(np.uint8).ravel() for v in values.values()),
                     *([] if counts is None else [counts.view(np.uint8)]), ids,
                     *([] if labels is None else [labels])]:
            crc = zlib.crc32(part, crc)  # reads the array's buffer in place
        stats = [os.stat(f) for f in self._files]
        identity = UnitIdentity({"block": unit.index, "crc32": crc,
                                 "sizes": [s.st_size for s in stats]})
        return values, counts, ids, labels, identity

    def identity(self, unit: Unit) -> UnitIdentity:
        return self._load(unit)[-1]

    def read(self, unit: Unit) -> RawRows:
        start, stop = self._span(unit)
        values, counts, id_block, label_block, identity = self._load(unit)
        faults: dict[int, str] = {}
        ids: list = list(_Lines.split(id_block))
        if len(ids) != stop - start:  # the file changed since it was counted
            raise BadInputError(str(self.ids.path), f"{len(ids)} lines where {stop - start} "
                                                    f"were counted: the file changed")
        if self.three_d:
            t = next(iter(values.values())).shape[1]
            counts = np.full(stop - start, t, np.int64)
            values = {m: v.reshape(-1, v.shape[-1]) for m, v in values.items()}
        labels = None
        if label_block is not None and self.labels is not None:
            labels = self._labels(_Lines.split(label_block), start, faults)
        features = {m: np.asarray(v, np.float32) for m, v in values.items()}
        return RawRows(path=self.where, rows=np.arange(start, stop, dtype=np.int64), ids=ids,
                       labels=labels, features=features, frame_counts=counts, faults=faults,
                       identity=identity)

    def _labels(self, lines: list[bytes], start: int, faults: dict[int, str]) -> Labels:
        assert self.labels is not None
        where = self.labels.path.name
        values: list = []
        lengths = np.zeros(len(lines), np.int64)
        present = np.ones(len(lines), bool)
        names = False
        for i, line in enumerate(lines):
            if self.labels_kind == "txt":
                try:
                    items: list = [int(x) for x in line.split()]
                except ValueError:
                    faults[i] = f"{where} line {start + i + 1}: not integers ({line[:60]!r})"
                    continue
            else:
                try:
                    items = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    faults[i] = f"{where} line {start + i + 1}: not JSON ({line[:60]!r})"
                    continue
                if items is None:
                    present[i] = False
                    continue
                if not isinstance(items, list) or not (
                        all(isinstance(x, int) and not isinstance(x, bool) for x in items)
                        or all(isinstance(x, str) for x in items)):
                    faults[i] = (f"{where} line {start + i + 1}: not a list of integers or of "
                                 f"names ({line[:60]!r})")
                    continue
                names = names or any(isinstance(x, str) for x in items)
            if any(isinstance(x, int) and not -2**62 < x < 2**62 for x in items):
                faults[i] = f"{where} line {start + i + 1}: label id out of range"
                continue
            lengths[i] = len(items)
            values.extend(items)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if names and any(isinstance(x, int) for x in values):
            for i in range(len(lines)):
                faults.setdefault(i, f"{where}: labels mix names and integers")
            array = np.asarray([str(x) for x in values], dtype=object)
        elif names:
            array = np.asarray(values, dtype=object)
        else:
            array = np.asarray(values, dtype=np.int64)
        return Labels(offsets, array, present)
