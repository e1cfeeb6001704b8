"""TFRecord framing: length, masked CRC32C of the length, payload, masked CRC32C of the payload.

Files are memory-mapped, so reading a shard holds one record at a time beyond what the
OS page cache keeps. Each record is copied out once as ``bytes``: google-crc32c only
accepts read-only ``bytes``, and owning the payload lets the map close at any time.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import google_crc32c

from yt8mkit.errors import BadInputError

_HEADER = struct.Struct("<QI")
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
