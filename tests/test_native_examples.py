"""The C walks of ingest on their own: built by the install, deciding every record as
the numpy walk does on mangled real records, and refusing bad arguments. (Every test of
test_fastparse.py also runs once with them and once without.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_fastparse import (
    _assert_scan_matches_decoder,
    _bytes_list,
    _entry,
    _example,
    _features,
    _float_list,
    _odd_records,
    float16_rounding_cases,
    framed,
)
from yt8mkit.data import fastparse
from yt8mkit.data.example import encode_example
from yt8mkit.data.native import crc32c_value
from yt8mkit.data.shard import ShardOptions, _check_records, _check_records_numpy
from yt8mkit.data.tfrecord import RecordSpans, masked_crc32c, read_spans

native = fastparse.native_examples


def test_walks_are_built() -> None:
    assert native is not None, "yt8mkit.data._native_examples was not built"


def _mangled(spans: RecordSpans, rng: np.random.Generator, count: int) -> list[bytes]:
    """Real records with a few random bytes changed, cut short or grown."""
    records = []
    for i in range(count):
        record = bytearray(spans.payload(i % len(spans)))
        for _ in range(int(rng.integers(0, 4))):
            # Mostly near either end, where the layout's bytes are.
            at = int(rng.integers(0, 40))
            at = at if rng.random() < 0.5 else max(len(record) - 1 - int(rng.integers(0, 600)), 0)
            record[at] = int(rng.integers(0, 256))
        cut = rng.random()
        if cut < 0.1:
            record = record[: int(rng.integers(0, len(record)))]
        elif cut < 0.15:
            record += bytes(rng.integers(0, 256, int(rng.integers(1, 6))).astype(np.uint8))
        records.append(bytes(record))
    return records


def test_c_checks_decide_mangled_real_records_as_numpy(smoke_dir: Path) -> None:
    """600 real records, mangled: the numpy scan is exact where it says plain, and the C
    checks pass the same records, with the same fields, as the numpy ones."""
    real = read_spans(smoke_dir / "validate00.tfrecord")
    records = _mangled(real, np.random.default_rng(23), 600)
    data, starts, ends = framed(records)
    plain = _assert_scan_matches_decoder(data, starts, ends)
    assert 100 < plain < 600  # both kinds of record were made
    spans = RecordSpans("f", data, np.arange(600), np.array(starts), np.array(ends))
    options = ShardOptions()
    ours, ref = _check_records(spans, 0, options), _check_records_numpy(spans, 0, options)
    np.testing.assert_array_equal(ours.ok, ref.ok)
    assert ours.dims == ref.dims == {"rgb": 1024, "audio": 128}
    np.testing.assert_array_equal(ours.fields[:, ours.ok], ref.fields[:, ref.ok])
    assert 100 < ours.ok.sum() <= plain


def test_examine_refuses_bad_arguments() -> None:
    buf = np.zeros(64, np.uint8)
    ok = np.zeros(2, np.uint8)
    table = np.zeros((5, 2), np.int64)
    keys = (b"id", b"labels", b"mean_rgb")

    def examine(ends: list[int], **changes: object) -> None:
        args = {"keys": keys, "dims": np.full(1, -1, np.int64), "table": table, **changes}
        native.examine(
            buf,
            np.array([0, 10]),
            np.array(ends),
            args["keys"],
            1,
            -1,
            args["dims"],
            ok,
            args["table"],
        )

    examine([5, 20])  # well formed: no error
    with pytest.raises(ValueError, match=r"record 1 \[10, 65\) is outside the buffer"):
        examine([5, 65])
    with pytest.raises(ValueError, match="table holds"):
        examine([5, 20], table=table[:4])
    with pytest.raises(ValueError, match="dims holds"):
        examine([5, 20], dims=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="an id and labels"):
        examine([5, 20], keys=(b"id",))
    with pytest.raises(TypeError, match="bytes"):
        examine([5, 20], keys=("id", "labels", "mean_rgb"))


def test_chain_refuses_bad_arguments() -> None:
    buf = np.zeros(64, np.uint8)
    places = 64 // 12 + 1
    with pytest.raises(ValueError, match="too few places"):
        native.chain(buf, np.zeros(2, np.int64), np.zeros(places, np.uint64))
    with pytest.raises(ValueError, match="too few places"):
        native.chain(buf, np.zeros(places, np.int64), np.zeros(2, np.uint64))
    # A length running past the end: the walk stops, the offset beyond the buffer, and
    # the length as written (even one above 2^63).
    for length in (1000, 2**64 - 5):
        buf[:8] = np.frombuffer(np.uint64(length).tobytes(), np.uint8)
        heads, lengths = np.zeros(places, np.int64), np.zeros(places, np.uint64)
        assert native.chain(buf, heads, lengths) == (1, 65)
        assert heads[0] == 0 and int(lengths[0]) == length


def test_payload_crcs_come_from_google_crc32c_library() -> None:
    # The wheel of google-crc32c bundles Google's crc32c library; its crc32c_value is
    # what the C loop calls (found and checked against the binding in native.py). The
    # loop masks each CRC as TFRecord does and compares it with the stored one.
    assert crc32c_value is not None, "google-crc32c's bundled library was not found"
    rng = np.random.default_rng(3)
    buf = rng.integers(0, 256, 21_300).astype(np.uint8)
    starts = np.sort(rng.integers(0, 19_000, 300)).astype(np.int64)
    ends = starts + rng.integers(0, 1000, 300)
    stored_at = 20_000 + 4 * np.arange(300, dtype=np.int64)[::-1]  # any place, any order
    for at, a, b in zip(stored_at, starts, ends):
        masked = masked_crc32c(buf[a:b].tobytes())
        buf[at : at + 4] = np.frombuffer(np.uint32(masked).tobytes(), np.uint8)
    wrong = rng.choice(300, 40, replace=False)
    buf[stored_at[wrong]] ^= 1 << rng.integers(0, 8, 40).astype(np.uint8)
    ok = np.empty(300, np.uint8)
    native.crcs(buf, starts, ends, crc32c_value, stored_at, ok)
    expected = np.ones(300, bool)
    expected[wrong] = False
    np.testing.assert_array_equal(ok.view(bool), expected)
    with pytest.raises(ValueError, match="outside the buffer"):
        native.crcs(buf, starts, ends + 20_000, crc32c_value, stored_at, ok)
    with pytest.raises(ValueError, match="stored CRC 3 at 21297 is outside the buffer"):
        native.crcs(buf, starts, ends, crc32c_value, np.where(np.arange(300) == 3, 21_297, 0), ok)
    with pytest.raises(ValueError, match="no crc32c_value"):
        native.crcs(buf, starts, ends, 0, stored_at, ok)


def test_varints_equal_the_numpy_decoder_on_random_bytes() -> None:
    # Random bytes make every kind of run: short and long varints, runs ending inside
    # one, 10th bytes above 1, 11-byte varints; counts and values must match too.
    rng = np.random.default_rng(8)
    for trial in range(20):
        high = rng.random() < 0.5  # many continuation bits: long varints
        data = rng.integers(0x70 if high else 0, 256, 4000).astype(np.uint8)
        lengths = rng.integers(0, 40, 80).astype(np.int64)
        starts = np.sort(rng.integers(0, 4000 - 40, 80)).astype(np.int64)
        ours = fastparse.decode_varints(data, starts, lengths, native=True)
        ref = fastparse.decode_varints(data, starts, lengths, native=False)
        for got, want in zip(ours, ref):
            np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")
    with pytest.raises(ValueError, match="outside the buffer"):
        fastparse.decode_varints(data, np.array([3990]), np.array([20]), native=True)


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_float16_rows_where_the_cpu_converts() -> None:
    converts = {"avx2", "f16c"} <= _cpu_flags()
    assert bool(native.HALF) is converts


@pytest.mark.parametrize("width", [1, 7, 8, 13, 1024])
def test_feature_rows_copy_check_and_cast_as_numpy(width: int) -> None:
    """Rows at odd byte offsets: float32 rows are the bytes, float16 rows numpy's cast
    (every rounding case, tails of 1-7 values after the 8-wide steps), and a row with
    NaN or Inf anywhere, or (float16) a value that the cast makes infinite, is flagged."""
    rng = np.random.default_rng(width)
    cases = float16_rounding_cases()
    n = min(len(cases) // width, 2000)
    values = rng.permutation(cases)[: n * width].reshape(n, width)
    # NaN and Inf, and finite float32 that float16 rounds to infinity (65520 is the
    # first; 65519.99 rounds to 65504).
    for bad in (np.nan, np.inf, -np.inf, 65520.0, -1e10):
        rows = rng.choice(n, 5, replace=False)
        values[rows, rng.integers(0, width, 5)] = bad
    values[-1, -1] = np.nan  # in the tail when there is one
    gaps = rng.integers(0, 6, n)
    starts = 3 + np.arange(n) * 4 * width + np.cumsum(gaps)
    buf = np.zeros(int(starts[-1]) + 4 * width + 5, np.uint8)
    for row, start in zip(values, starts):
        buf[start : start + 4 * width] = np.frombuffer(row.tobytes(), np.uint8)
    assert 0 < np.isfinite(values).all(axis=1).sum() < n
    for dtype in [np.float32] + ([np.float16] if native.HALF else []):
        out = np.empty((n, width), dtype)
        finite = np.empty(n, np.uint8)
        native.rows(buf, starts.astype(np.int64), width, out, finite)
        with np.errstate(over="ignore", invalid="ignore"):
            expected = values.astype(dtype)
        # Finite in the stored dtype too: a float32 beyond float16's range is flagged.
        finite_rows = np.isfinite(values).all(axis=1) & np.isfinite(expected).all(axis=1)
        if dtype == np.float16:
            assert (finite_rows != np.isfinite(values).all(axis=1)).any()  # such rows exist
        np.testing.assert_array_equal(finite.view(bool), finite_rows)
        # Only rows that pass are kept; a NaN's payload bits are the CPU's choice.
        assert out[finite_rows].tobytes() == expected[finite_rows].tobytes(), dtype
        got, flags = fastparse.gather_features(buf, starts, width, dtype)
        assert got.dtype == dtype and got[flags].tobytes() == expected[finite_rows].tobytes()


def test_feature_rows_refuse_bad_arguments() -> None:
    buf = np.zeros(100, np.uint8)
    out = np.empty((2, 4), np.float32)
    finite = np.empty(2, np.uint8)
    with pytest.raises(ValueError, match="row 1 at byte 90 runs outside the buffer"):
        native.rows(buf, np.array([0, 90]), 4, out, finite)
    with pytest.raises(ValueError, match="out holds 32 bytes, expected 24"):
        native.rows(buf, np.array([0, 50]), 3, out, finite)
    with pytest.raises(ValueError, match="finite holds 2 bytes, expected 3"):
        native.rows(buf, np.array([0, 20, 50]), 2, np.empty((3, 2), np.float32), finite)


def _bad_int64_runs() -> list[bytes]:
    """Packed int64 lists the general decoder rejects (an 11-byte varint, a run ending
    inside a varint), as labels and as a second id key, which is not read but must
    decode; and the same keys with good runs."""
    f = _features()
    rgb, audio = _float_list(f["mean_rgb"]), _float_list(f["mean_audio"])

    def int64_list(packed: bytes) -> bytes:
        inner = b"\x0a" + bytes([len(packed)]) + packed
        return b"\x1a" + bytes([len(inner)]) + inner

    out = []
    for packed in (b"\x83" * 10 + b"\x01", b"\x05\x83", b"\x05\x07"):
        for key in (b"labels", b"video_id"):
            entries = [_entry(b"id", _bytes_list(b"v1")), _entry(key, int64_list(packed))]
            out.append(_example(*entries, _entry(b"mean_rgb", rgb), _entry(b"mean_audio", audio)))
    return out


@pytest.mark.parametrize(
    "options",
    [
        ShardOptions(),
        ShardOptions(num_classes=10),
        ShardOptions(dims={"rgb": 7}),
        ShardOptions(dims={"audio": 4, "rgb": 8}, num_classes=3862),
        ShardOptions(dims={"audio": 5}),  # no record has it: later widths of the first
    ],
    ids=["learned", "classes", "rgb_given", "both_given", "audio_impossible"],
)
def test_c_checks_equal_the_numpy_checks(smoke_dir: Path, options: ShardOptions) -> None:
    """``_check_records`` in C (the scan and every check in one loop) against the
    numpy checks: odd layouts, bad int64 runs, labels out of range, other widths and
    mangled real records, in orders that change which record sets the dims."""
    real = read_spans(smoke_dir / "validate00.tfrecord")
    records = [
        *_odd_records().values(),
        *_bad_int64_runs(),
        encode_example(_features(dim=7)),
        encode_example({**_features(), "labels": np.array([12], np.int64)}),
        *_mangled(real, np.random.default_rng(4), 60),
    ]
    rng = np.random.default_rng(11)
    passing = []
    for trial in range(8):
        order = rng.permutation(len(records)) if trial else np.arange(len(records))
        data, starts, ends = framed([records[i] for i in order])
        n = len(starts)
        spans = RecordSpans("f", data, np.arange(n), np.array(starts), np.array(ends))
        begin = trial % 3
        ours = _check_records(spans, begin, options)
        ref = _check_records_numpy(spans, begin, options)
        np.testing.assert_array_equal(ours.ok, ref.ok, err_msg=f"trial {trial}")
        assert ours.dims == ref.dims, trial
        np.testing.assert_array_equal(ours.fields[:, ours.ok], ref.fields[:, ref.ok])
        passing.append(int(ours.ok.sum()))
    if options.dims == {"audio": 5}:
        assert max(passing) == 0
    else:
        assert max(passing) > 0 and min(passing) < len(records) - 2  # both kinds of record
