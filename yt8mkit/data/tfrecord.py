"""TFRecord framing: length, masked CRC32C of the length, payload, masked CRC32C of the payload.

Two readers with the same checks and the same messages:

- ``TFRecordReader`` memory-maps a file and yields one record at a time, so it holds one
  record beyond what the OS page cache keeps. Each record is copied out once as
  ``bytes``: google-crc32c only accepts read-only ``bytes``, and owning the payload
  lets the map close at any time.
- ``read_spans`` maps a whole shard and frames it in bulk for the vectorised decoders:
  records are located by offset in the file's bytes.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import google_crc32c
import numpy as np

from yt8mkit.data.fastparse import gather_rows
from yt8mkit.data.native import crc32c_value, native_examples
from yt8mkit.errors import BadInputError

_HEADER = struct.Struct("<QI")
_LENGTH = struct.Struct("<Q")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC32C rotated right by 15 bits plus a constant."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class TFRecordReader:
    """Iterates the records of one TFRecord file, checking both CRCs of each.

    Used as a context manager so that the memory map is released even when a
    bad record raises mid-file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        check_crc: bool = True,
        errors: list[BadInputError] | None = None,
    ) -> None:
        """With ``errors`` given, a record whose payload CRC fails is appended there and
        skipped, and a broken header or truncation ends the file there, instead of raising."""
        self.path = Path(path)
        self.check_crc = check_crc
        self.errors = errors
        self._file: BinaryIO | None = None
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None

    def __enter__(self) -> TFRecordReader:
        self._file = open(self.path, "rb")  # closed in __exit__
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            self._view = memoryview(b"")
        else:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._view = memoryview(self._map)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._view is not None:
            self._view.release()
        if self._map is not None:
            self._map.close()
        if self._file is not None:
            self._file.close()
        self._view = self._map = self._file = None

    def __iter__(self) -> Iterator[bytes]:
        for _, payload in self.indexed():
            yield payload

    def indexed(self) -> Iterator[tuple[int, bytes]]:
        """(record index in the file, payload): indices stay true when bad records are skipped."""
        if self._view is None:
            raise RuntimeError("TFRecordReader must be used as a context manager")
        view = self._view
        size = len(view)
        path = str(self.path)
        check = self.check_crc
        try:
            yield from self._records(view, size, path, check)
        except BadInputError as err:
            if self.errors is None:
                raise
            self.errors.append(err)

    def _records(
        self, view: memoryview, size: int, path: str, check: bool
    ) -> Iterator[tuple[int, bytes]]:
        offset = 0
        index = 0
        while offset < size:
            if size - offset < _HEADER.size:
                raise BadInputError(
                    path, f"truncated record: {size - offset} bytes left, header needs 12", index
                )
            length, length_crc = _HEADER.unpack_from(view, offset)
            if check and masked_crc32c(bytes(view[offset : offset + 8])) != length_crc:
                if index == 0:
                    raise BadInputError(
                        path, "not a TFRecord file: the first record's length CRC does not match"
                    )
                raise BadInputError(path, "bad length CRC (corrupt record header)", index)
            start = offset + _HEADER.size
            end = start + length
            if end + _FOOTER.size > size:
                raise BadInputError(
                    path,
                    f"truncated record: header says {length} bytes, "
                    f"{max(size - start - _FOOTER.size, 0)} present",
                    index,
                )
            payload = bytes(view[start:end])
            if check and masked_crc32c(payload) != _FOOTER.unpack_from(view, end)[0]:
                err = BadInputError(path, "bad data CRC (corrupt record payload)", index)
                if self.errors is None:
                    raise err
                # The framing is intact, so the records after this one can still be read.
                self.errors.append(err)
            else:
                yield index, payload
            offset = end + _FOOTER.size
            index += 1


def _mask(crc: np.ndarray) -> np.ndarray:
    """``masked_crc32c``'s masking of an array of CRCs (uint32 arithmetic wraps)."""
    crc = crc.astype(np.uint32)
    return ((crc >> 15) | (crc << 17)) + np.uint32(_MASK_DELTA)


def _int_at(buf: np.ndarray, offsets: np.ndarray, dtype: str) -> np.ndarray:
    """The little-endian integer of ``dtype`` ("<u4", "<u8") at each offset of ``buf``."""
    return gather_rows(buf, offsets, np.dtype(dtype).itemsize).view(dtype).ravel()


@dataclass(frozen=True)
class FileIdentity:
    """What an input file was when it was read, so that a resumed ingest can tell
    whether the file it appended is still the same file.

    ``digest`` is the CRC32C of every record's framing: its length field, that field's
    CRC and the stored CRC of its payload. With CRCs checked (the default) each stored
    payload CRC was compared with the payload, so the digest covers the whole content
    at the cost of 16 bytes a record, not a second pass over the file. ``size`` and
    ``mtime_ns`` are taken before the file is read: a file changed while it was read
    then no longer matches."""

    size: int
    mtime_ns: int
    digest: int

    def as_dict(self) -> dict[str, int]:
        # Not dataclasses.asdict: that costs more than the rest of a small file's journal.
        return {"size": self.size, "mtime_ns": self.mtime_ns, "digest": self.digest}


def _framing_digest(buf: np.ndarray, head: np.ndarray, length: np.ndarray, size: int) -> int:
    """``FileIdentity.digest`` of the records at ``head``; a last record that runs past
    the end of the file has no payload CRC, so only its header counts."""
    end = head + _HEADER.size + length.astype(np.int64)
    whole = (end + _FOOTER.size <= size) & (end >= head)
    parts = gather_rows(buf, head, _HEADER.size).tobytes() + gather_rows(
        buf, end[whole], _FOOTER.size
    ).tobytes()
    return google_crc32c.value(parts)


def _identity(stat: os.stat_result, buf: np.ndarray, head: np.ndarray, length: np.ndarray
              ) -> FileIdentity:
    return FileIdentity(
        stat.st_size, stat.st_mtime_ns, _framing_digest(buf, head, length, stat.st_size)
    )


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """``FileIdentity`` of a file as it is now (its framing only is read)."""
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if stat.st_size else b""
    buf = np.frombuffer(data, np.uint8)
    head, length, _ = _length_chain(data, buf, stat.st_size)
    return _identity(stat, buf, head, length)


@dataclass
class RecordSpans:
    """The intact records of one file: record ``index[i]`` of the file is
    ``data[start[i]:end[i]]``.

    A record whose payload CRC fails is left out and listed in ``crc_errors`` (the
    framing around it is intact, so the records after it are still found); ``fatal``
    is the fault that ends the file early (a corrupt length field, a truncation, not a
    TFRecord at all), after every record listed."""

    path: str
    data: bytes | mmap.mmap
    index: np.ndarray
    start: np.ndarray
    end: np.ndarray
    crc_errors: list[BadInputError] = field(default_factory=list)
    fatal: BadInputError | None = None
    identity: FileIdentity | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def buf(self) -> np.ndarray:
        return np.frombuffer(self.data, np.uint8)

    def payload(self, i: int) -> bytes:
        return self.data[int(self.start[i]) : int(self.end[i])]


def _length_chain(
    data: bytes | mmap.mmap, buf: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Offsets of the record headers that have their 12 bytes, their length fields
    (uint64), and where the next header would start. Each length says where the next
    record starts: a serial chain, walked in C where it was built, else by a plain loop
    that does nothing else; lengths and bounds are checked over all records afterwards."""
    if native_examples is not None:
        heads = np.empty(size // _HEADER.size + 1, np.int64)
        lengths = np.empty(size // _HEADER.size + 1, np.uint64)
        count, offset = native_examples.chain(buf, heads, lengths)
        return heads[:count], lengths[:count], offset
    found: list[int] = []
    unpack = _LENGTH.unpack_from
    offset = 0
    while size - offset >= _HEADER.size:
        found.append(offset)
        offset += unpack(data, offset)[0] + _HEADER.size + _FOOTER.size
    heads = np.array(found, np.int64)
    return heads, _int_at(buf, heads, "<u8"), offset


def _crcs_match(
    data: bytes | mmap.mmap,
    buf: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    stored_at: np.ndarray,
) -> np.ndarray:
    """Whether the masked CRC32C of each ``data[start[i]:end[i]]`` is the one stored at
    ``stored_at[i]``: google-crc32c's C library called for all of them from one C loop
    where it was found (see native.py), which also masks and compares; else its Python
    binding once a span, and numpy."""
    if native_examples is not None and crc32c_value is not None:
        ok = np.empty(len(start), np.uint8)
        native_examples.crcs(buf, start, end, crc32c_value, stored_at, ok)
        return ok.view(bool)
    spans = map(data.__getitem__, map(slice, start.tolist(), end.tolist()))
    computed = np.fromiter(map(google_crc32c.value, spans), np.uint32, len(start))
    return _mask(computed) == _int_at(buf, stored_at, "<u4")


def read_spans(path: str | os.PathLike[str], check_crc: bool = True) -> RecordSpans:
    """Frame a whole file: the same checks and messages as ``TFRecordReader``, in bulk
    (both CRCs of every record by ``_crcs_match``)."""
    name = str(path)
    # Mapped, not read: a frame-level shard can be hundreds of MB, and its pages then stay
    # page cache (shared, reclaimable) instead of a private copy. The map closes when the
    # last array over it goes (numpy holds it open while a view exists).
    with open(path, "rb") as f:
        stat = os.fstat(f.fileno())
        size = stat.st_size
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    buf = np.frombuffer(data, np.uint8)
    head, length, offset = _length_chain(data, buf, size)
    identity = _identity(stat, buf, head, length)
    truncated: BadInputError | None = None
    if offset > size:
        last = len(head) - 1
        present = max(size - int(head[-1]) - _HEADER.size - _FOOTER.size, 0)
        what = f"truncated record: header says {int(length[-1])} bytes, {present} present"
        truncated = BadInputError(name, what, last)
    elif offset < size:
        what = f"truncated record: {size - offset} bytes left, header needs 12"
        truncated = BadInputError(name, what, len(head))
    fatal = truncated
    count = len(head) if truncated is None else truncated.record
    if check_crc and len(head):
        at = head + _LENGTH.size
        bad = np.flatnonzero(~_crcs_match(data, buf, head, at, at))
        # A length is checked before it is trusted: a bad length CRC outranks the
        # truncation that the corrupt length itself may have caused.
        if bad.size:
            count = int(bad[0])
            fatal = (
                BadInputError(name, "bad length CRC (corrupt record header)", count)
                if count
                else BadInputError(
                    name, "not a TFRecord file: the first record's length CRC does not match"
                )
            )
    start = head[:count] + _HEADER.size
    end = start + length[:count].astype(np.int64)
    index = np.arange(int(count or 0), dtype=np.int64)
    crc_errors: list[BadInputError] = []
    if check_crc and count:
        good = _crcs_match(data, buf, start, end, end)
        if not good.all():
            crc_errors = [
                BadInputError(name, "bad data CRC (corrupt record payload)", int(i))
                for i in index[~good]
            ]
            index, start, end = index[good], start[good], end[good]
    return RecordSpans(name, data, index, start, end, crc_errors, fatal, identity)


def iter_records(path: str | os.PathLike[str], check_crc: bool = True) -> Iterator[bytes]:
    """Yields each record's payload, checking both CRCs unless told not to."""
    with TFRecordReader(path, check_crc) as reader:
        for payload in reader:
            yield bytes(payload)


class TFRecordWriter:
    """Writes framed, checksummed records to a file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, payload: bytes) -> None:
        length = struct.pack("<Q", len(payload))
        self._file.write(length)
        self._file.write(_FOOTER.pack(masked_crc32c(length)))
        self._file.write(payload)
        self._file.write(_FOOTER.pack(masked_crc32c(payload)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
