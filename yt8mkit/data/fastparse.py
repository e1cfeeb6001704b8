"""All the ``tf.train.Example`` records of one file located at once, with numpy.

Walking the wire format one record at a time in Python costs ~20 µs a video-level
record. Here every record of a file is walked together: numpy steps through the
Features map of all records in lockstep (one step an entry, a few entries a record),
then parses every map entry of the file in one pass. The result gives, for each
record and each key the caller knows, where that feature's packed payload lies in
the file's bytes, so the caller can gather every feature row with one fancy index.

Only the plain encoding is accepted, the one TensorFlow and ``encode_example`` write:
one Features field, optionally followed by an empty field 2 (as in the official
YouTube-8M shards), holding map entries ``{key, value}`` in that order whose value is
a Feature with one list, itself empty or one packed field (one value for a bytes
list); lengths below 2^21; known keys only, each at most once. A record is ``plain``
only when all of that was verified, and then the general decoder
(``example.decode_example``) would give exactly the features described here; any
other record (unpacked lists, unknown or repeated keys, long varints, malformed
bytes, ...) is left to the general decoder. Correctness never rests on records
resembling each other: every record is checked on its own bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from numpy.lib.stride_tricks import as_strided

from yt8mkit.data.half import as_video_dtype
from yt8mkit.data.native import native_examples

NATIVE_MAX_KEYS = 16  # MAX_KEYS of native_examples.c

# The Feature's oneof field tags (field number << 3 | wire type 2).
BYTES_LIST, FLOAT_LIST, INT64_LIST = 0x0A, 0x12, 0x1A
_LEN_TAG_1, _LEN_TAG_2 = 0x0A, 0x12  # field 1 / field 2, length-delimited


@dataclass
class KeySpans:
    """One key over the records of a file; meaningful where the record is plain.

    ``kind`` is the Feature's list tag (0 where the key is absent), and the payload is
    ``buf[start:start + length]``: the packed floats or varints, or the one bytes
    value. For int64 lists, ``values`` holds every record's decoded values, records
    one after another in file order, ``counts[i]`` of them for record i."""

    kind: np.ndarray
    start: np.ndarray
    length: np.ndarray
    values: np.ndarray
    counts: np.ndarray

    @property
    def present(self) -> np.ndarray:
        return self.kind != 0


@dataclass
class ExampleScan:
    """Per record, whether it is plain (and so described exactly by ``keys``)."""

    plain: np.ndarray
    keys: dict[str, KeySpans]


def _varint_tables() -> tuple[np.ndarray, np.ndarray]:
    """Value and size of the varint starting with each pair of bytes (little-endian
    uint16), size 0 where it runs on into a third byte."""
    pair = np.arange(1 << 16)
    b0, b1 = pair & 0xFF, pair >> 8
    one, two = b0 < 0x80, (b0 >= 0x80) & (b1 < 0x80)
    value = np.where(one, b0, ((b0 & 0x7F) | (b1 << 7)) * two).astype(np.int32)
    return value, (one * 1 + two * 2).astype(np.uint8)


_VARINT_VALUE, _VARINT_SIZE = _varint_tables()


class _Reader:
    """Reads at many positions of one buffer at once. Every TFRecord payload is followed
    by its 4-byte CRC, and callers keep positions at most at their record's end, so the
    few bytes read past a position stay in the file."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        # Rows of 2 bytes starting at every offset: one fancy index reads a little-endian
        # uint16 at each position.
        self.pairs = as_strided(buf, (max(len(buf) - 1, 0), 2), (1, 1), writeable=False)

    def varint(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | np.bool_]:
        """(value, size, ok) of the varint at each position; ok where at most 3 bytes
        (a scalar True when all are). Lengths in these records take one or two bytes, so
        a table of every two-byte start decodes them, and only longer ones are worked out."""
        pair = self.pairs[pos].view("<u2").ravel()
        value, size = _VARINT_VALUE[pair], _VARINT_SIZE[pair]
        if size.all():
            return value, size, np.True_
        ok = np.ones(len(pos), bool)
        longer = np.flatnonzero(size == 0)
        third = self.buf[pos[longer] + 2]
        low = pair[longer]
        value[longer] = (low & 0x7F) | ((low >> 8) & 0x7F) << 7 | (third.astype(np.int32) << 14)
        size[longer] = 3
        ok[longer] = third < 0x80
        return value, size, ok


def _entries(
    read: _Reader, fstart: np.ndarray, fend: np.ndarray, plain: np.ndarray, max_entries: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record, start, end) of every map entry's payload. The entries of a record form a
    chain of lengths, so they are found one step a record at a time, all records
    together; a record with more than ``max_entries`` entries is not plain."""
    rec = np.flatnonzero(plain & (fstart < fend))
    pos, end = fstart[rec], fend[rec]
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(max_entries):
        if not rec.size:
            break
        length, size, fits = read.varint(pos + 1)
        start = pos + 1 + size
        stop = start + length
        ok = (read.buf[pos] == _LEN_TAG_1) & (stop <= end) & fits
        if not ok.all():
            plain[rec[~ok]] = False
            rec, start, stop, end = rec[ok], start[ok], stop[ok], end[ok]
        found.append((rec, start, stop))
        more = stop < end
        if more.all():
            pos = stop
        else:
            rec, pos, end = rec[more], stop[more], end[more]
    plain[rec] = False
    if not found:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    rec, start, stop = (np.concatenate(parts) for parts in zip(*found))
    return rec, start, stop


class _KeyTable:
    """Known keys as rows of 64-bit words: the key's length byte, then the key, zero
    padded. An entry's key is found by a hash of its row and then compared word by
    word, so a match is exact; keys whose hashes collide are simply not recognised
    (their records go to the general decoder)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.words = -(-(1 + max(len(k) for k in keys)) // 8)
        self.width = 8 * self.words
        rows = np.zeros((len(keys), self.width), np.uint8)
        for i, key in enumerate(keys):
            rows[i, : 1 + len(key)] = np.frombuffer(bytes([len(key)]) + key, np.uint8)
        self.columns = [np.ascontiguousarray(c) for c in rows.view("<u8").T]
        # For each key length, the mask of each word: keeps the length byte and the key.
        keep = np.where(np.arange(self.width) <= np.arange(256)[:, None], 0xFF, 0)
        self.masks = [np.ascontiguousarray(c) for c in keep.astype(np.uint8).view("<u8").T]
        hashes = self._hash(self.columns)
        self.order = np.argsort(hashes)
        self.sorted_hashes = hashes[self.order]

    @staticmethod
    def _hash(columns: Sequence[np.ndarray]) -> np.ndarray:
        h = columns[0].copy()
        for column in columns[1:]:
            h *= np.uint64(0x9E3779B97F4A7C15)
            h ^= column
        return h

    def ids(self, buf: np.ndarray, klen_at: np.ndarray) -> np.ndarray:
        """Index of each entry's key (its length byte at ``klen_at``), -1 if unknown."""
        if not len(klen_at) or len(buf) < self.width:
            return np.full(len(klen_at), -1, np.int64)
        # Rows that would run off the buffer belong to entries that fail their own
        # bounds checks; they are read from a clamped position.
        at = np.minimum(klen_at, len(buf) - self.width)
        rows = as_strided(buf, (len(buf) - self.width + 1, self.width), (1, 1))[at].view("<u8")
        klen = buf[klen_at]
        columns = [rows[:, j] & self.masks[j][klen] for j in range(self.words)]
        slot = np.searchsorted(self.sorted_hashes, self._hash(columns))
        ids = self.order[np.minimum(slot, len(self.order) - 1)]
        same = columns[0] == self.columns[0][ids]
        for j in range(1, self.words):
            same &= columns[j] == self.columns[j][ids]
        return np.where(same, ids, -1)


@functools.cache
def _key_table(keys: tuple[str, ...]) -> _KeyTable:
    return _KeyTable([k.encode() for k in keys])


def scan_examples(
    buf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    keys: Sequence[str],
) -> ExampleScan:
    """Locate ``keys`` in the Examples ``buf[starts[i]:ends[i]]`` (records of a TFRecord
    file, each followed by at least 4 bytes of the file).

    Ingest runs this walk, with the checks of a video-level record, in C where that was
    built (``examine`` of native_examples.c, via ``shard._check_records``); this numpy
    walk is the fallback, and the reference the tests hold the C one to."""
    n = len(starts)
    read = _Reader(buf)
    # Example: field 1 (the Features) over the whole record, or followed by ``12 00``.
    flen, size, fits = read.varint(starts + 1)
    fstart = starts + 1 + size
    fend = fstart + flen
    tail = ends - fend
    plain = (buf[starts] == _LEN_TAG_1) & ((tail == 0) | (tail == 2)) & fits
    if (tail == 2).any():
        plain &= (tail == 0) | ((buf[ends - 2] == _LEN_TAG_2) & (buf[ends - 1] == 0))

    rec, es, ee = _entries(read, fstart, fend, plain, len(keys))
    # Entry {1: key, 2: Feature}; Feature {kind: list}; list {} or {1: packed payload}.
    # Positions past an entry's end are clamped to it, so reads stay in the file.
    klen = buf[es + 1]
    kend = np.minimum(es + 2 + klen, ee)
    good = (buf[es] == _LEN_TAG_1) & (klen < 0x80) & (kend < ee) & (buf[kend] == _LEN_TAG_2)
    vlen, size, ok = read.varint(kend + 1)
    vstart = np.minimum(kend + 1 + size, ee)
    good &= ok & (vstart + vlen == ee) & (vlen >= 2)
    kind = buf[vstart]
    llen, size, ok = read.varint(vstart + 1)
    lstart = np.minimum(vstart + 1 + size, ee)
    good &= ok & (lstart + llen == ee)
    good &= (kind == BYTES_LIST) | (kind == FLOAT_LIST) | (kind == INT64_LIST)
    plen, size, ok = read.varint(lstart + 1)
    pstart = lstart + 1 + size
    empty = llen == 0
    # An empty bytes list is not "one id"; the general decoder and its checks judge it.
    good &= np.where(empty, kind != BYTES_LIST, ok & (buf[lstart] == _LEN_TAG_1))
    good &= empty | (pstart + plen == ee)
    pstart[empty] = ee[empty]
    plen[empty] = 0
    good &= (kind != FLOAT_LIST) | (plen % 4 == 0)
    key_id = _key_table(tuple(keys)).ids(buf, es + 1)
    good &= key_id >= 0
    plain[rec[~good]] = False

    # One row a key, one column a record; an entry of a key seen twice makes its record
    # not plain (protobuf keeps the last; the general decoder does that).
    rec, key_id = rec[good], key_id[good]
    seen = np.bincount(key_id * n + rec, minlength=len(keys) * n).reshape(len(keys), n)
    plain &= (seen <= 1).all(axis=0)
    table = np.zeros((3, len(keys), n), np.int64)
    table[0, key_id, rec] = kind[good]
    table[1, key_id, rec] = pstart[good]
    table[2, key_id, rec] = plen[good]
    spans = {
        key: KeySpans(
            table[0, i], table[1, i], table[2, i], np.zeros(0, np.int64), np.zeros(n, np.int64)
        )
        for i, key in enumerate(keys)
    }
    return _with_int64_values(buf, ExampleScan(plain, spans))


def _required_native() -> ModuleType:
    """The C walks, asked for explicitly (``native=True``): an error if not built."""
    if native_examples is None:
        raise RuntimeError(
            "the C walks (yt8mkit.data._native_examples) were not built: "
            "reinstall yt8mkit where a C compiler is available"
        )
    return native_examples


def _with_int64_values(buf: np.ndarray, scan: ExampleScan) -> ExampleScan:
    """Decode the packed int64 lists of the plain records; a bad run unplains its record."""
    for span in scan.keys.values():
        rows = np.flatnonzero(scan.plain & (span.kind == INT64_LIST))
        if rows.size:
            values, counts, valid = decode_varints(buf, span.start[rows], span.length[rows])
            scan.plain[rows[~valid]] = False
            span.values, span.counts[rows] = values, counts
    return scan


def decode_varints(
    buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, native: bool | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The packed int64 runs ``buf[starts[i]:starts[i] + lengths[i]]``, all at once.

    Returns (values, count of values of each run, valid). A run is invalid if it ends
    inside a varint or holds a varint the general decoder rejects or cannot hold in
    int64 (over 10 bytes, or a 10th byte above 1); its values are still in ``values``
    so that the counts add up. In C where it was built (``native`` forces one way)."""
    if native is None:
        native = native_examples is not None
    if native:
        return _decode_varints_native(buf, starts, lengths)
    runs = len(starts)
    valid = np.ones(runs, bool)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(runs, np.int64), valid
    offsets = np.cumsum(lengths) - lengths
    raw = buf[np.repeat(starts - offsets, lengths) + np.arange(total)]
    nonempty = lengths > 0
    last = (offsets + lengths - 1)[nonempty]
    stops = raw < 0x80
    valid[nonempty] = stops[last]
    stops[last] = True  # a run that ends inside a varint must not run into the next
    value_end = np.flatnonzero(stops)
    value_start = np.concatenate([[0], value_end[:-1] + 1])
    size = value_end - value_start + 1
    low = (raw & 0x7F).astype(np.uint64)
    values = low[value_start]
    for j in range(1, min(int(size.max()), 11)):
        longer = np.flatnonzero(size > j)
        if j == 10:  # an 11th byte: the general decoder rejects the varint
            valid[_run_of(value_start[longer], offsets)] = False
            break
        byte = low[value_start[longer] + j]
        if j == 9:  # bits past 64: the general decoder cannot hold the value in int64
            valid[_run_of(value_start[longer[byte > 1]], offsets)] = False
        values[longer] |= byte << np.uint64(7 * j)
    ends_so_far = np.concatenate([[0], np.cumsum(stops)])
    counts = ends_so_far[offsets + lengths] - ends_so_far[offsets]
    return values.view(np.int64), counts, valid


def _decode_varints_native(
    buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts = np.ascontiguousarray(starts, np.int64)
    lengths = np.ascontiguousarray(lengths, np.int64)
    values = np.empty(int(lengths.sum()), np.int64)
    counts = np.empty(len(starts), np.int64)
    valid = np.empty(len(starts), np.uint8)
    found = _required_native().varints(buf, starts, lengths, values, counts, valid)
    return values[:found], counts, valid.view(bool)


def _run_of(positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The run holding each byte position of the concatenated runs."""
    return np.searchsorted(offsets, positions, side="right") - 1


def gather_features(
    buf: np.ndarray, starts: np.ndarray, width: int, dtype: str | np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The ``width`` little-endian float32 values at each start, as a (len(starts),
    width) array of ``dtype``, and whether each row is all finite both as read and in
    ``dtype`` (a float32 too large for float16 becomes infinity in the cast: such a row
    is not finite, so that it is refused rather than stored changed).

    In C where it was built: the copy, the check and (with F16C) the float16 cast are
    one pass over the rows without the GIL, instead of a fancy index, an isfinite and a
    cast, each a pass of its own holding the GIL for a part."""
    dtype = np.dtype(dtype)
    if native_examples is None:
        values = gather_rows(buf, starts, 4 * width).view("<f4")
        cast = as_video_dtype(values, dtype)
        # Checked after the cast: a finite float32 beyond float16's range is not kept.
        return cast, np.isfinite(values).all(axis=1) & np.isfinite(cast).all(axis=1)
    half = dtype == np.float16 and bool(native_examples.HALF)
    out = np.empty((len(starts), width), np.float16 if half else np.float32)
    finite = np.empty(len(starts), np.uint8)
    native_examples.rows(buf, np.ascontiguousarray(starts, np.int64), width, out, finite)
    return as_video_dtype(out, dtype), finite.view(bool)


def gather_spans(
    buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The byte runs ``buf[starts[i]:starts[i] + lengths[i]]`` one after another, and
    the offsets (len(starts) + 1) of each in the result."""
    offsets = np.zeros(len(starts) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    at = np.arange(int(offsets[-1]), dtype=np.int64)
    at += np.repeat(starts - offsets[:-1], lengths)
    return buf[at], offsets


def gather_rows(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(len(starts), width) copy of the bytes at each start: one fancy index over a
    sliding-window view copies whole rows, instead of indexing every byte."""
    if len(starts) == 0 or width == 0:
        return np.zeros((len(starts), width), np.uint8)
    if width > len(buf):
        raise ValueError(f"rows of {width} bytes in a buffer of {len(buf)}")
    # The window view built directly: sliding_window_view's checks cost more than the
    # copy for a shard's few hundred rows, and this runs twice a shard.
    windows = np.ndarray((len(buf) - width + 1, width), np.uint8, buf, strides=(1, 1))
    return windows[starts]
