"""The store: a directory of raw arrays opened with memory mapping, plus ``meta.json``.

Layout (n videos, F frames in all, L labels in all)::

    meta.json                   StoreMeta: counts, dims, dtypes, class count, sources
    ids.bin, ids_offsets.bin    video ids, concatenated bytes + int64 offsets (n+1)
    video/<modality>.bin        (n, dim) video-level features, float16 by default
    labels_indptr.bin           int64 (n+1)   CSR labels
    labels_indices.bin          int32 (L)
    labelled.bin                bool (n)      False for records without a `labels` key
    frame_offsets.bin           int64 (n+1)   frame-level stores only
    frames/<modality>.bin       (F, dim) uint8, quantized as in the TFRecords
    folds.bin, folds.json       int8 (n) fold of each video (see folds.py)

Arrays are appended to in file order while a store is written, so nothing needs to
be known in advance and nothing is held in memory; a store exists under its name
only once complete (written as ``.NAME.partial`` and renamed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from yt8mkit.data import journal
from yt8mkit.data.compact import compact_fixed, compact_ragged, duplicate_rows, kept_offsets
from yt8mkit.data.quantize import dequantize
from yt8mkit.data.shard import ShardChunk
from yt8mkit.errors import BadInputError, Yt8mError
from yt8mkit.metrics.topk import csr_entries

FORMAT_VERSION = 1
META = "meta.json"


class SkippedRecord(BaseModel):
    path: str
    record: int | None
    what: str


class StoreMeta(BaseModel):
    format_version: int = FORMAT_VERSION
    level: Literal["video", "frame"]
    num_videos: int = Field(ge=0)
    num_classes: int = Field(ge=1)
    dims: dict[str, Annotated[int, Field(ge=1)]]
    video_dtype: Literal["float16", "float32"] = "float16"
    num_labels: int = Field(0, ge=0)
    num_unlabelled: int = Field(0, ge=0)
    num_frames: int = Field(0, ge=0)
    sources: list[str] = Field(default_factory=list)
    skipped: list[SkippedRecord] = Field(default_factory=list)


class StoreError(Yt8mError):
    """A store is missing, incomplete or not of a version we read."""


class DamagedStoreError(Yt8mError):
    """A file of a store is not what its meta.json says (truncated, missing, garbage).
    Not a StoreError: callers that handle a missing part (folds not yet assigned) by
    writing it must not treat damage the same way."""


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def is_store_dir(path: Path) -> bool:
    """Whether ``path`` holds a store (a readable meta.json of a store): a folder that
    an ingest may replace."""
    try:
        StoreMeta.model_validate_json((path / META).read_text())
    except (OSError, ValueError):
        return False
    return True


class Store:
    """Read access to a complete store; every array is a read-only memory map."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            if partial_path(self.path).exists():
                raise StoreError(f"{self.path}: store is incomplete (an ingest did not finish)")
            raise StoreError(f"{self.path}: not a store (no {META})")
        try:
            self.meta = StoreMeta.model_validate_json(meta_path.read_bytes())
        except ValueError as err:
            first = str(err).splitlines()
            raise DamagedStoreError(
                f"{meta_path}: not a valid store description ({' '.join(first[:3])})"
            ) from None
        if self.meta.format_version != FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: store format {self.meta.format_version}, "
                f"this yt8mkit reads {FORMAT_VERSION}"
            )
        self._check_files()

    def _expected_sizes(self) -> dict[str, int]:
        """The byte length of every array file that meta.json implies."""
        meta = self.meta
        n = meta.num_videos
        half = np.dtype(meta.video_dtype).itemsize
        sizes = {
            "ids_offsets.bin": 8 * (n + 1),
            "labels_indptr.bin": 8 * (n + 1),
            "labels_indices.bin": 4 * meta.num_labels,
            "labelled.bin": n,
            **{f"video/{m}.bin": half * n * dim for m, dim in meta.dims.items()},
        }
        if meta.level == "frame":
            sizes["frame_offsets.bin"] = 8 * (n + 1)
            sizes.update({f"frames/{m}.bin": meta.num_frames * dim
                          for m, dim in meta.dims.items()})
        return sizes

    def _check_files(self) -> None:
        """Every array file there with the length meta.json implies (a few stats): a
        damaged store is named when opened, not by a failed memory map later."""
        for name, size in self._expected_sizes().items():
            if size:
                self._check_file(name, size)

    def _check_file(self, name: str, need: int) -> None:
        path = self.path / name
        try:
            size = path.stat().st_size
        except OSError as err:
            raise DamagedStoreError(
                f"{path}: array file of the store missing ({err.strerror})") from None
        if size != need:
            raise DamagedStoreError(
                f"{path}: {size:,} bytes, meta.json says {need:,}: the store is damaged "
                f"(truncated or overwritten); ingest it again"
            )

    @staticmethod
    def is_store(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / META).is_file()

    # ---------------------------------------------------------------- shape

    @property
    def num_videos(self) -> int:
        return self.meta.num_videos

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    @property
    def dims(self) -> dict[str, int]:
        return dict(self.meta.dims)

    @property
    def modalities(self) -> list[str]:
        return list(self.meta.dims)

    @property
    def has_frames(self) -> bool:
        return self.meta.level == "frame"

    def __len__(self) -> int:
        return self.num_videos

    def _map(self, name: str, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> np.ndarray:
        if 0 in shape:
            return np.zeros(shape, dtype)
        return np.memmap(self.path / name, dtype=dtype, mode="r", shape=shape)

    # ---------------------------------------------------------------- ids

    @cached_property
    def _id_offsets(self) -> np.ndarray:
        return self._map("ids_offsets.bin", np.int64, (self.num_videos + 1,))

    @cached_property
    def _id_bytes(self) -> np.ndarray:
        size = int(self._id_offsets[-1])
        self._check_file("ids.bin", size)
        return self._map("ids.bin", np.uint8, (size,))

    def video_id(self, index: int) -> str:
        start, stop = self._id_offsets[index], self._id_offsets[index + 1]
        return self._id_bytes[start:stop].tobytes().decode("utf-8", "replace")

    def ids(self) -> list[str]:
        """All ids; the only per-video Python objects a store builds, so build them once."""
        blob = self._id_bytes.tobytes()
        offsets = self._id_offsets.tolist()
        return [blob[a:b].decode("utf-8", "replace") for a, b in pairwise(offsets)]

    # ---------------------------------------------------------------- features

    def video_features(self, modality: str) -> np.ndarray:
        return self._map(
            f"video/{modality}.bin",
            self.meta.video_dtype,
            (self.num_videos, self.meta.dims[modality]),
        )

    def video_batch(self, rows: np.ndarray | slice) -> dict[str, np.ndarray]:
        """float32 video-level features of the given rows, one array per modality."""
        return {m: np.asarray(self.video_features(m)[rows], np.float32) for m in self.modalities}

    # ---------------------------------------------------------------- labels

    @cached_property
    def labels_indptr(self) -> np.ndarray:
        return self._map("labels_indptr.bin", np.int64, (self.num_videos + 1,))

    @cached_property
    def labels_indices(self) -> np.ndarray:
        return self._map("labels_indices.bin", np.int32, (self.meta.num_labels,))

    @cached_property
    def labelled(self) -> np.ndarray:
        return self._map("labelled.bin", np.bool_, (self.num_videos,))

    @property
    def has_labels(self) -> bool:
        return self.meta.num_unlabelled < self.num_videos

    def scored_rows(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The videos among ``rows`` (all by default) that count in a GAP or a loss on
        held-out videos: the labelled ones.

        The one rule of every level (first-level models and their epoch choice, the stack,
        distillation, evaluation): a video whose record has no ``labels`` key
        (``labelled`` False: test data without labels, a hole in a training set) is left
        out, not scored as a video without positives, which would pull every GAP down by
        the share of such videos. A labelled video with an empty label list counts."""
        labelled = np.asarray(self.labelled, bool)
        if rows is None:
            return np.flatnonzero(labelled)
        rows = np.asarray(rows, np.int64)
        return rows[labelled[rows]]

    def labels_of(self, index: int) -> np.ndarray:
        return np.asarray(
            self.labels_indices[self.labels_indptr[index] : self.labels_indptr[index + 1]]
        )

    def labels_dense(self, rows: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """(len(rows), num_classes) 0/1 targets of the given rows."""
        which, entries = csr_entries(self.labels_indptr, rows)
        dense: np.ndarray = np.zeros((len(rows), self.num_classes), dtype)
        dense[which, self.labels_indices[entries]] = 1
        return dense

    def label_counts(self) -> np.ndarray:
        """How many videos carry each class, int64 (num_classes,)."""
        return np.bincount(np.asarray(self.labels_indices), minlength=self.num_classes)

    # ---------------------------------------------------------------- frames

    @cached_property
    def frame_offsets(self) -> np.ndarray:
        if not self.has_frames:
            raise StoreError(f"{self.path}: a video-level store has no frames")
        return self._map("frame_offsets.bin", np.int64, (self.num_videos + 1,))

    def frame_features(self, modality: str) -> np.ndarray:
        if not self.has_frames:
            raise StoreError(f"{self.path}: a video-level store has no frames")
        return self._map(
            f"frames/{modality}.bin", np.uint8, (self.meta.num_frames, self.meta.dims[modality])
        )

    def frame_counts(self) -> np.ndarray:
        return np.diff(np.asarray(self.frame_offsets))

    def video_frames(self, index: int, dequantized: bool = True) -> dict[str, np.ndarray]:
        start, stop = self.frame_offsets[index], self.frame_offsets[index + 1]
        out = {m: np.asarray(self.frame_features(m)[start:stop]) for m in self.modalities}
        return {m: dequantize(f) for m, f in out.items()} if dequantized else out

    # ---------------------------------------------------------------- folds

    def folds(self) -> np.ndarray:
        path = self.path / "folds.bin"
        if not path.is_file():
            raise StoreError(f"{self.path}: no folds yet (run `yt8m folds`)")
        folds = np.fromfile(path, dtype=np.int8)
        if len(folds) != self.num_videos:
            raise DamagedStoreError(
                f"{path}: {len(folds):,} folds for {self.num_videos:,} videos (truncated or "
                f"from another store); assign them again with `yt8m folds`"
            )
        # -1 is the selection split (yt8mkit/data/folds.py); nothing else is negative.
        if folds.size and folds.min() < -1:
            raise DamagedStoreError(f"{path}: fold ids below -1; run `yt8m folds` again")
        return folds


class StoreWriter:
    """Appends shard chunks to a store being written, and resumes one that was cut off.

    The rule: a store is either complete and verified, or absent. While it is written
    it lies in ``.NAME.partial``, and after every input file the journal (journal.py)
    records the byte length of every array file and the identity of that input. A
    resume truncates every array to the last file the journal records whole (and
    deletes arrays created after it), after checking that each of those inputs is
    still the file that was read (``identify``); from the first one that changed, the
    inputs are read again. Without ``identify`` (sources that are not files) the
    journal's header, which names every source, is the only check.
    """

    def __init__(
        self,
        path: Path,
        sources: list[str],
        options_key: dict[str, object],
        video_dtype: str = "float16",
        identify: Callable[[int], dict | None] | None = None,
        skip_duplicates: bool = False,
    ) -> None:
        self.path = path
        self.tmp = partial_path(path)
        self.sources = sources
        self.options_key = options_key
        self.video_dtype = np.dtype(video_dtype)
        self.identify = identify
        # --skip-corrupt: a video whose id an earlier one has is skipped, not an error.
        self.skip_duplicates = skip_duplicates
        self.journal_path = self.tmp / journal.NAME
        self.done_files = 0
        self.level: str | None = None
        self.dims: dict[str, int] | None = None
        self.num_videos = 0
        self.num_labels = 0
        self.num_frames = 0
        self.num_unlabelled = 0
        self.max_label = -1
        self.skipped: list[SkippedRecord] = []
        # video index at which each written source starts, to name a duplicate's file
        self.file_starts: list[int] = []
        self._files: dict[str, object] = {}
        # Byte length of every array file, kept here rather than asked of the file system.
        self._sizes: dict[str, int] = {}
        self._id_bytes = 0  # the last value of ids_offsets.bin
        self._journal_fd: int | None = None

    # ---------------------------------------------------------------- lifecycle

    _STATE = ("level", "dims", "num_videos", "num_labels", "num_frames", "num_unlabelled",
              "max_label")
    _FIRST_ARRAYS = ("labels_indptr.bin", "ids_offsets.bin")  # each starts with a 0

    def _header(self) -> dict:
        return {
            "sources": self.sources,
            "options": self.options_key,
            "video_dtype": self.video_dtype.name,
            "sizes": {name: 8 for name in self._FIRST_ARRAYS},
        }

    def open(self, resume: bool = True) -> int:
        """Prepare the partial directory; returns how many sources are already written."""
        if self.tmp.exists():
            found = journal.read(self.journal_path)
            if resume and found is not None and found.header == self._header():
                kept = self._verified(found.entries)
                if self._restore(found.header, found.entries[:kept]):
                    return self.done_files
            self._remove_partial()
        self.tmp.mkdir(parents=True)
        # The journal first: a partial folder without one is known to be empty or ours.
        journal.start(self.journal_path, self._header())
        for name in self._FIRST_ARRAYS:
            (self.tmp / name).write_bytes(np.zeros(1, np.int64).tobytes())
            self._sizes[name] = 8
        return 0

    def _remove_partial(self) -> None:
        """Remove a partial store that cannot be resumed, having checked that it is one
        (it holds a journal, or meta.json when cut off while being moved into place)."""
        if any(self.tmp.iterdir()) and not (
            (self.tmp / journal.NAME).is_file() or (self.tmp / META).is_file()
        ):
            raise StoreError(
                f"{self.tmp}: exists and is not a partial store written by yt8mkit; "
                f"it is left as it is (remove it yourself, or give another --out)"
            )
        shutil.rmtree(self.tmp)

    def _verified(self, entries: list[dict]) -> int:
        """How many of the journalled files, from the first, are still the files read."""
        for i, entry in enumerate(entries):
            if i >= len(self.sources) or entry.get("file") != i:
                return i
            if self.identify is not None:
                try:
                    now = self.identify(i)
                except OSError:
                    return i
                if now is None or entry.get("identity") != now:
                    return i
        return len(entries)

    def _restore(self, header: dict, entries: list[dict]) -> bool:
        """Put the partial store back where ``entries`` end; False where its files do
        not hold what the journal says (then it is written again from the start)."""
        sizes: dict[str, int] = entries[-1]["sizes"] if entries else header["sizes"]
        for name, size in sizes.items():
            file = self.tmp / name
            if not file.is_file() or file.stat().st_size < size:
                return False
        for file in sorted(self.tmp.rglob("*"), reverse=True):
            name = file.relative_to(self.tmp).as_posix()
            if file.is_file() and name not in sizes and name != journal.NAME:
                file.unlink()  # created by a file the journal does not record whole
        for name, size in sizes.items():
            os.truncate(self.tmp / name, size)
        self._sizes = dict(sizes)
        with open(self.tmp / "ids_offsets.bin", "rb") as fh:
            fh.seek(self._sizes["ids_offsets.bin"] - 8)
            self._id_bytes = int(np.frombuffer(fh.read(8), np.int64)[0])
        if entries:
            for key in self._STATE:
                setattr(self, key, entries[-1]["state"][key])
        self.done_files = len(entries)
        self.file_starts = [entry["start"] for entry in entries]
        self.skipped = [
            SkippedRecord.model_validate(s) for entry in entries for s in entry["skipped"]
        ]
        # Lines after the kept ones (a changed input, a torn line) go.
        journal.rewrite(self.journal_path, journal.JournalContents(header, entries))
        return True

    def _journal_file(self, identity: dict | None, skipped: list[SkippedRecord]) -> None:
        """After a whole file: its data reaches the OS before the line that records it."""
        for f in self._files.values():
            f.flush()  # type: ignore[attr-defined]
        if self._journal_fd is None:
            self._journal_fd = journal.open_for_append(self.journal_path)
        journal.append(self._journal_fd, {
            "file": self.done_files - 1,
            "path": self.sources[self.done_files - 1],
            "identity": identity,
            "start": self.file_starts[-1],
            "skipped": [s.model_dump() for s in skipped],
            "sizes": dict(self._sizes),
            "state": {key: getattr(self, key) for key in self._STATE},
        })

    def _append(self, name: str, data: np.ndarray | bytes) -> None:
        f = self._files.get(name)
        if f is None:
            (self.tmp / name).parent.mkdir(parents=True, exist_ok=True)
            f = self._files[name] = open(self.tmp / name, "ab")  # noqa: SIM115
        if not isinstance(data, bytes):
            array = np.ascontiguousarray(data)
            # memoryview cannot cast an array with a zero in its shape
            data = memoryview(array).cast("B") if array.size else b""  # type: ignore[arg-type,assignment]  # written without a copy
        f.write(data)  # type: ignore[attr-defined]
        self._sizes[name] = self._sizes.get(name, 0) + len(data)

    def close_files(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        for f in self._files.values():
            f.close()  # type: ignore[attr-defined]
        self._files.clear()

    def abort(self, keep_partial: bool) -> None:
        """After a failure: keep the partial store for a resume (a crash, an interrupt:
        the journal already records every whole file) or remove it (bad input, so that
        no partial output is left)."""
        # A full disk fails the last flush: the journal does not count those bytes.
        with contextlib.suppress(OSError):
            self.close_files()
        if not keep_partial and self.tmp.exists():
            shutil.rmtree(self.tmp)

    # ---------------------------------------------------------------- appending

    def check_chunk(self, chunk: ShardChunk) -> None:
        """Checks across files: one level, one set of dimensions. Unique ids, in a file
        and across files, are checked once at the end (``_check_duplicate_ids``)."""
        if chunk.num_videos == 0:
            return
        if self.level is not None and chunk.level != self.level:
            raise BadInputError(
                chunk.path, f"{chunk.level}-level records, but earlier files are {self.level}-level"
            )
        if self.dims is not None and chunk.dims != self.dims:
            raise BadInputError(
                chunk.path, f"feature dimensions {chunk.dims}, but earlier files have {self.dims}"
            )

    def append(self, chunk: ShardChunk) -> None:
        """Append one validated chunk; call ``check_chunk`` first."""
        skipped = [SkippedRecord(path=b.path, record=b.record, what=b.what) for b in chunk.skipped]
        self.skipped.extend(skipped)
        self.file_starts.append(self.num_videos)
        if chunk.num_videos:
            self.level = chunk.level
            self.dims = chunk.dims
            n = chunk.num_videos
            self._append("ids.bin", chunk.id_bytes)
            self._append("ids_offsets.bin", self._id_bytes + chunk.id_offsets[1:])
            self._id_bytes += int(chunk.id_offsets[-1])
            for m, values in chunk.video.items():
                self._append(f"video/{m}.bin", values.astype(self.video_dtype, copy=False))
            self._append(
                "labels_indptr.bin", self.num_labels + np.cumsum(chunk.label_counts, dtype=np.int64)
            )
            self._append("labels_indices.bin", chunk.label_indices.astype(np.int32, copy=False))
            self._append("labelled.bin", chunk.labelled.astype(np.bool_, copy=False))
            self._append("record_index.tmp.bin", chunk.record_indices.astype(np.int32, copy=False))
            if chunk.level == "frame":
                assert chunk.frame_counts is not None and chunk.frames is not None
                if "frame_offsets.bin" not in self._sizes:
                    self._append("frame_offsets.bin", np.zeros(1, np.int64))
                self._append(
                    "frame_offsets.bin",
                    self.num_frames + np.cumsum(chunk.frame_counts, dtype=np.int64),
                )
                for m, frames in chunk.frames.items():
                    self._append(f"frames/{m}.bin", frames)
                self.num_frames += int(chunk.frame_counts.sum())
            self.num_videos += n
            self.num_labels += int(chunk.label_counts.sum())
            self.num_unlabelled += int((~chunk.labelled).sum())
            if chunk.label_indices.size:
                self.max_label = max(self.max_label, int(chunk.label_indices.max()))
        self.done_files += 1
        identity = None if chunk.identity is None else chunk.identity.as_dict()
        self._journal_file(identity, skipped)

    def _check_duplicate_ids(self) -> None:
        """Across every written video: the error names the earliest record whose id an
        earlier one has (``first_duplicate``)."""
        offsets = np.fromfile(self.tmp / "ids_offsets.bin", np.int64)
        blob = np.fromfile(self.tmp / "ids.bin", np.uint8)
        pair = first_duplicate(blob, offsets)
        if pair is None:
            return
        first, second = pair
        record_index = np.fromfile(self.tmp / "record_index.tmp.bin", np.int32)

        def where(video: int) -> tuple[str, int]:
            source = int(np.searchsorted(self.file_starts, video, side="right")) - 1
            return self.sources[source], int(record_index[video])

        vid = blob[offsets[first] : offsets[first + 1]].tobytes().decode("utf-8", "replace")
        (path1, rec1), (path2, rec2) = where(first), where(second)
        raise BadInputError(
            path2, f"duplicate video id {vid!r} (first seen in {path1}, record {rec1})", rec2
        )

    def _where(self, video: int, record_index: np.ndarray) -> tuple[str, int]:
        source = int(np.searchsorted(self.file_starts, video, side="right")) - 1
        return self.sources[source], int(record_index[video])

    def _drop_duplicate_ids(self) -> None:
        """Skip (and list) every video whose id an earlier video has: each array is
        rewritten without them (compact.py)."""
        offsets = np.fromfile(self.tmp / "ids_offsets.bin", np.int64)
        blob = np.fromfile(self.tmp / "ids.bin", np.uint8)
        dups, firsts = duplicate_rows(blob, offsets)
        if not dups.size:
            return
        record_index = np.fromfile(self.tmp / "record_index.tmp.bin", np.int32)
        for dup, first in zip(dups.tolist(), firsts.tolist()):
            vid = blob[offsets[dup] : offsets[dup + 1]].tobytes().decode("utf-8", "replace")
            (path1, rec1), (path2, rec2) = (self._where(first, record_index),
                                            self._where(dup, record_index))
            self.skipped.append(SkippedRecord(
                path=path2, record=rec2,
                what=f"duplicate video id {vid!r} (first seen in {path1}, record {rec1})"))
        keep = np.ones(self.num_videos, bool)
        keep[dups] = False
        del blob, record_index
        tmp = self.tmp
        ragged = [("ids_offsets.bin", [("ids.bin", 1)]),
                  ("labels_indptr.bin", [("labels_indices.bin", 4)])]
        if self.level == "frame":
            ragged.append(("frame_offsets.bin",
                           [(f"frames/{m}.bin", d) for m, d in (self.dims or {}).items()]))
        for offsets_name, value_files in ragged:
            bounds = np.fromfile(tmp / offsets_name, np.int64)
            for name, item_bytes in value_files:
                compact_ragged(tmp / name, bounds, item_bytes, keep)
            kept_offsets(bounds, keep).tofile(tmp / offsets_name)
        itemsize = self.video_dtype.itemsize
        for m, dim in (self.dims or {}).items():
            compact_fixed(tmp / f"video/{m}.bin", dim * itemsize, keep)
        compact_fixed(tmp / "labelled.bin", 1, keep)
        self.num_videos = int(keep.sum())
        self.num_labels = int(np.fromfile(tmp / "labels_indptr.bin", np.int64)[-1])
        if self.level == "frame":
            self.num_frames = int(np.fromfile(tmp / "frame_offsets.bin", np.int64)[-1])
        self.num_unlabelled = int((~np.fromfile(tmp / "labelled.bin", np.bool_)).sum())
        labels = np.fromfile(tmp / "labels_indices.bin", np.int32)
        self.max_label = int(labels.max()) if labels.size else -1

    def finish(self, num_classes: int | None) -> StoreMeta:
        """Write meta.json and move the store into place."""
        self.close_files()
        if self.num_videos == 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise BadInputError(
                ", ".join(self.sources[:3]) + (" ..." if len(self.sources) > 3 else ""),
                "empty input: no valid records",
            )
        if self.skip_duplicates:
            self._drop_duplicate_ids()
        else:
            self._check_duplicate_ids()
        if num_classes is None:
            num_classes = self.max_label + 1
        (self.tmp / "record_index.tmp.bin").unlink(missing_ok=True)
        meta = StoreMeta(
            level=self.level,
            num_videos=self.num_videos,
            num_classes=max(num_classes, 1),
            dims=self.dims or {},
            video_dtype=self.video_dtype.name,
            num_labels=self.num_labels,
            num_unlabelled=self.num_unlabelled,
            num_frames=self.num_frames,
            # Each file once: a Parquet or NumPy input is journalled in several units.
            sources=list(dict.fromkeys(self.sources)),
            skipped=self.skipped,
        )
        # meta.json before the journal goes: the partial folder always holds one of them.
        (self.tmp / META).write_text(meta.model_dump_json(indent=2))
        self.journal_path.unlink()
        _move_into_place(self.tmp, self.path)
        return meta


def _move_into_place(tmp: Path, path: Path) -> None:
    """Rename the complete ``tmp`` to ``path``; a store already there (the caller checked
    that it is one, or an empty folder) is moved aside first and removed after."""
    if path.is_dir() and any(path.iterdir()):
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def first_duplicate(blob: np.ndarray, offsets: np.ndarray) -> tuple[int, int] | None:
    """The earliest video whose id an earlier video has, as (that earlier video, it),
    or None; ids as in ``ShardChunk``.

    The ids, zero-padded to whole 8-byte words, are sorted as rows of integers, with
    their length where lengths differ (``np.lexsort``, stable), so that equal ids are
    neighbours, in order: a few bytes a video and sorts of integers, not a Python set
    of every id."""
    lengths = np.diff(offsets)
    n = len(lengths)
    if n < 2:
        return None
    ids = blob[offsets[0] : offsets[-1]]
    width = int(lengths.max())
    padded = np.zeros((n, 8 * max((width + 7) // 8, 1)), np.uint8)
    uniform = bool((lengths == width).all())
    if uniform:  # the usual case (YouTube-8M ids have one length): a reshape
        padded[:, :width] = ids.reshape(n, width)
    else:
        cols = np.arange(ids.size) - np.repeat(offsets[:-1] - offsets[0], lengths)
        padded[np.repeat(np.arange(n), lengths), cols] = ids
    # np.lexsort: the last key sorts first; the length only where lengths differ.
    keys = [*padded.view(np.uint64).T, *([] if uniform else [lengths])]
    order = np.lexsort(keys)
    same = np.ones(n - 1, bool)  # each sorted row equal to the next
    for key in keys:
        ranked = key[order]
        same &= ranked[1:] == ranked[:-1]
    # The second of each group of equal ids (the first occurrence is just before it).
    second = np.flatnonzero(same & np.concatenate([[True], ~same[:-1]])) + 1
    if second.size == 0:
        return None
    earliest = second[np.argmin(order[second])]
    return int(order[earliest - 1]), int(order[earliest])


def iter_row_batches(num_rows: int, batch_size: int) -> Iterable[slice]:
    for start in range(0, num_rows, batch_size):
        yield slice(start, min(start + batch_size, num_rows))
