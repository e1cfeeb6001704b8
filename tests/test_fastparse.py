"""The vectorised decoders against the general ones they stand in for: the scan of
``fastparse`` against ``decode_example``, bulk framing against ``TFRecordReader``, and
``read_shard`` against decoding and checking each record in turn, on the real smoke
files and on synthetic records with odd layouts, corruptions and fuzzed bytes."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.pb_reference import parse_example
from yt8mkit.data import fastparse, half, tfrecord
from yt8mkit.data.example import WireError, decode_example, encode_example
from yt8mkit.data.fastparse import (
    BYTES_LIST,
    FLOAT_LIST,
    INT64_LIST,
    decode_varints,
    scan_examples,
)
from yt8mkit.data.half import as_video_dtype
from yt8mkit.data.shard import (
    ShardChunk,
    ShardOptions,
    _check_records,
    _ChunkBuilder,
    _RecordError,
    detect_level,
    read_shard,
)
from yt8mkit.data.tfrecord import TFRecordReader, TFRecordWriter, read_spans
from yt8mkit.errors import BadInputError

KEYS = ["id", "video_id", "labels", "mean_rgb", "mean_audio"]
RNG = np.random.default_rng(5)


# ---------------------------------------------------------------- references


def _common_widths(path: Path, options: ShardOptions) -> dict[str, int] | None:
    """The feature widths most records of the file have (the general decoder's view;
    ties to the smaller width), or None where a modality has none."""
    widths: dict[str, list[int]] = {m: [] for m in options.schema.modalities}
    with TFRecordReader(path, options.check_crc, errors=[]) as reader:
        for _, payload in reader.indexed():
            try:
                features = decode_example(payload)
            except WireError:
                continue
            for m in widths:
                feature = features.get(options.schema.video_key(m))
                values = None if feature is None else feature.float_list
                if values is not None and values.size:
                    widths[m].append(int(values.size))
    if not all(widths.values()):
        return None
    common = {}
    for m, found in widths.items():
        values, counts = np.unique(found, return_counts=True)
        common[m] = int(values[np.argmax(counts)])
    return common


def _mostly_plain_examples(path: Path, options: ShardOptions) -> bool:
    """Whether more than half of the records pass the fast checks of a video-level
    record (the cheap test by which read_shard calls a file video-level whatever its
    first record is)."""
    spans = read_spans(path, options.check_crc)
    return bool(len(spans)) and 2 * int(_check_records(spans, 0, options).ok.sum()) > len(spans)


def _sequential_shard(path: Path, options: ShardOptions) -> ShardChunk:
    """``read_shard`` as it was before the fast path: each record in turn through the
    streaming reader, the general decoder and the scalar checks. Two rules for a file
    whose first record is the odd one: its widths are those most records have (unless
    given), and most records plain Examples make it video-level."""
    skipped: list[BadInputError] = []
    builder: _ChunkBuilder | None = None
    errors = skipped if options.skip_corrupt else None
    video_level = _mostly_plain_examples(path, options)
    if options.dims is None:
        options = replace(options, dims=_common_widths(path, options))
    with TFRecordReader(path, options.check_crc, errors=errors) as reader:
        for index, payload in reader.indexed():
            try:
                if builder is None:
                    level = "video" if video_level else detect_level(payload)
                    builder = _ChunkBuilder(str(path), level, options)
                builder.add(index, payload)
            except (_RecordError, WireError) as err:
                what = str(err) if isinstance(err, _RecordError) else f"malformed record: {err}"
                bad = BadInputError(str(path), what, index)
                if not options.skip_corrupt:
                    raise bad from None
                skipped.append(bad)
    if builder is None:
        return ShardChunk(path=str(path), level="video", skipped=skipped)
    return builder.build(skipped)


def _assert_same_chunk(ours: ShardChunk, ref: ShardChunk) -> None:
    assert ours.ids == ref.ids
    assert ours.record_indices.tolist() == ref.record_indices.tolist()
    assert ours.labelled.tolist() == ref.labelled.tolist()
    assert ours.label_counts.tolist() == ref.label_counts.tolist()
    assert ours.label_indices.tolist() == ref.label_indices.tolist()
    assert ours.dims == ref.dims or ours.num_videos == 0
    for m, values in ref.video.items():
        assert ours.video[m].dtype == values.dtype
        assert ours.video[m].tobytes() == values.tobytes(), m
    assert [str(e) for e in ours.skipped] == [str(e) for e in ref.skipped]


def _compare_read_shard(path: Path, **option: object) -> ShardChunk:
    """read_shard and the sequential reference agree: same chunk, or the same error."""
    options = ShardOptions(**option)  # type: ignore[arg-type]
    try:
        ref = _sequential_shard(path, options)
    except BadInputError as err:
        with pytest.raises(BadInputError) as info:
            read_shard(str(path), options)
        assert str(info.value) == str(err)
        return ShardChunk(path=str(path), level="video")
    ours = read_shard(str(path), options)
    _assert_same_chunk(ours, ref)
    return ours


@pytest.fixture(autouse=True, params=["C walks", "numpy walks"])
def walks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: with the C length chain, Example scan, checks and
    float16 casts (which the install builds; missing, that run fails; the casts where
    the CPU has F16C, see test_native_examples) and with the numpy/Python ones
    (PyTorch for the casts)."""
    if request.param == "C walks":
        assert fastparse.native_examples is not None, "yt8mkit.data._native_examples not built"
    else:
        for module in (fastparse, tfrecord, half):
            monkeypatch.setattr(module, "native_examples", None)
        assert not half.casts_natively()
    return request.param


def framed(payloads: list[bytes]) -> tuple[bytes, list[int], list[int]]:
    """Payloads laid out as in a TFRecord file (a 12-byte header before each, a 4-byte
    footer after, zeros here): the bytes, and where each payload starts and ends."""
    data = bytearray()
    starts, ends = [], []
    for payload in payloads:
        data += b"\x00" * 12
        starts.append(len(data))
        data += payload
        ends.append(len(data))
        data += b"\x00" * 4
    return bytes(data), starts, ends


def _assert_scan_matches_decoder(data: bytes, starts: list[int], ends: list[int]) -> int:
    """Every record the scan calls plain decodes, with the general decoder, to exactly
    the features the scan located. Returns how many were plain."""
    buf = np.frombuffer(data, np.uint8)
    begin, end = np.array(starts, np.int64), np.array(ends, np.int64)
    scan = scan_examples(buf, begin, end, KEYS)
    offsets = {k: np.concatenate([[0], np.cumsum(s.counts)]) for k, s in scan.keys.items()}
    for i in np.flatnonzero(scan.plain).tolist():
        ref = decode_example(data[starts[i] : ends[i]])
        assert set(ref) == {k for k in KEYS if scan.keys[k].present[i]}
        for key, feature in ref.items():
            span = scan.keys[key]
            raw = data[span.start[i] : span.start[i] + span.length[i]]
            if span.kind[i] == BYTES_LIST:
                assert feature.bytes_list == [raw]
            elif span.kind[i] == FLOAT_LIST:
                assert feature.float_list.tobytes() == raw
            else:
                assert span.kind[i] == INT64_LIST
                values = span.values[offsets[key][i] : offsets[key][i + 1]]
                assert feature.int64_list.tolist() == values.tolist()
    return int(scan.plain.sum())


# ---------------------------------------------------------------- real files


def test_scan_of_real_files_matches_protobuf(smoke_dir: Path) -> None:
    for path in sorted(smoke_dir.glob("*.tfrecord")):
        spans = read_spans(path)
        scan = scan_examples(spans.buf, spans.start, spans.end, KEYS)
        assert scan.plain.all(), path.name  # the official writer's layout, every record
        labels = scan.keys["labels"]
        offsets = np.concatenate([[0], np.cumsum(labels.counts)])
        for i in range(0, len(spans), 23):
            ref = parse_example(spans.payload(i)).features.feature
            vid = scan.keys["id"]
            assert (
                spans.data[vid.start[i] : vid.start[i] + vid.length[i]]
                == (ref["id"].bytes_list.value[0])
            )
            expected = list(ref["labels"].int64_list.value) if "labels" in ref else []
            assert labels.present[i] == ("labels" in ref)
            assert labels.values[offsets[i] : offsets[i + 1]].tolist() == expected
            for key in ("mean_rgb", "mean_audio"):
                span = scan.keys[key]
                raw = spans.data[span.start[i] : span.start[i] + span.length[i]]
                expected_floats = np.array(ref[key].float_list.value, np.float32)
                np.testing.assert_array_equal(np.frombuffer(raw, "<f4"), expected_floats)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_read_shard_of_real_files_equals_sequential(smoke_dir: Path, dtype: str) -> None:
    for path in sorted(smoke_dir.glob("*.tfrecord")):
        _compare_read_shard(path, num_classes=3862, video_dtype=dtype)


# ---------------------------------------------------------------- synthetic layouts


def _features(vid: bytes = b"abcd", labels: object = (3, 140), dim: int = 8) -> dict:
    return {
        "id": vid,
        "labels": np.array(labels, np.int64),
        "mean_rgb": RNG.normal(size=dim).astype(np.float32),
        "mean_audio": RNG.normal(size=4).astype(np.float32),
    }


def _entry(key: bytes, feature: bytes) -> bytes:
    body = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(feature)) + feature
    return b"\x0a" + _varint(len(body)) + body


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _example(*entries: bytes, trailer: bytes = b"") -> bytes:
    body = b"".join(entries)
    return b"\x0a" + _varint(len(body)) + body + trailer


def _float_list(values: np.ndarray) -> bytes:
    packed = values.astype("<f4").tobytes()
    inner = b"\x0a" + _varint(len(packed)) + packed
    return b"\x12" + _varint(len(inner)) + inner


def _unpacked_int64(values: list[int]) -> bytes:
    inner = b"".join(b"\x08" + _varint(v % (1 << 64)) for v in values)
    return b"\x1a" + _varint(len(inner)) + inner


def _bytes_list(*values: bytes) -> bytes:
    inner = b"".join(b"\x0a" + _varint(len(v)) + v for v in values)
    return b"\x0a" + _varint(len(inner)) + inner


def _odd_records() -> dict[str, bytes]:
    """Records the official writer does not write, each valid or not."""
    f = _features()
    rgb, audio = _float_list(f["mean_rgb"]), _float_list(f["mean_audio"])
    ident, labels = _bytes_list(b"odd1"), _unpacked_int64([3, 9])
    return {
        "plain": encode_example(f),
        "reordered": encode_example({k: f[k] for k in ("mean_audio", "labels", "id", "mean_rgb")}),
        "no_labels": encode_example({k: f[k] for k in ("id", "mean_rgb", "mean_audio")}),
        "empty_labels": encode_example({**f, "labels": np.zeros(0, np.int64)}),
        "negative_label": encode_example({**f, "labels": np.array([5, -2], np.int64)}),
        "big_label": encode_example({**f, "labels": np.array([2**40], np.int64)}),
        "video_id": encode_example({"video_id": b"v17", **{k: f[k] for k in KEYS[2:]}}),
        "both_ids": encode_example({"video_id": b"v17", **f}),
        "trailer_field_2": _example(
            _entry(b"id", ident),
            _entry(b"mean_rgb", rgb),
            _entry(b"mean_audio", audio),
            trailer=b"\x12\x00",
        ),
        "other_trailer": _example(
            _entry(b"id", ident),
            _entry(b"mean_rgb", rgb),
            _entry(b"mean_audio", audio),
            trailer=b"\x1a\x00",
        ),
        "unpacked_labels": _example(
            _entry(b"id", ident),
            _entry(b"labels", labels),
            _entry(b"mean_rgb", rgb),
            _entry(b"mean_audio", audio),
        ),
        "extra_feature": encode_example({**f, "extra": np.array([1.5], np.float32)}),
        "non_utf8_key": _example(
            _entry(b"\xff\xfe", rgb),
            _entry(b"id", ident),
            _entry(b"mean_rgb", rgb),
            _entry(b"mean_audio", audio),
        ),
        "duplicate_key": _example(
            _entry(b"id", ident),
            _entry(b"mean_rgb", rgb),
            _entry(b"mean_audio", audio),
            _entry(b"mean_rgb", _float_list(np.zeros(8, np.float32))),
        ),
        "two_ids": _example(
            _entry(b"id", _bytes_list(b"a", b"b")),
            _entry(b"mean_rgb", rgb),
            _entry(b"mean_audio", audio),
        ),
        "empty_id_list": _example(
            _entry(b"id", _bytes_list()), _entry(b"mean_rgb", rgb), _entry(b"mean_audio", audio)
        ),
        "labels_as_floats": encode_example({**f, "labels": np.array([1.0], np.float32)}),
        "rgb_as_bytes": encode_example({**f, "mean_rgb": b"\x00" * 32}),
        "wrong_dim": encode_example(_features(dim=7)),
        "wide_feature": encode_example(_features(dim=5000)),  # lengths of 3-byte varints
        "nan": encode_example({**f, "mean_audio": np.array([0, np.nan, 0, 0], np.float32)}),
        "long_length_varint": _example(
            _entry(b"id", ident),
            _entry(b"mean_audio", audio),
            b"\x0a\x84\x80\x80\x00" + _entry(b"mean_rgb", rgb)[2:],
        ),
        "odd_float_bytes": _example(
            _entry(b"id", ident),
            _entry(b"mean_rgb", b"\x12\x05\x0a\x03abc"),
            _entry(b"mean_audio", audio),
        ),
        "truncated_inside": encode_example(f)[:-9],
        "empty": b"",
        "features_empty": b"\x0a\x00",
        "not_an_example": b"\xff" * 40,
    }


def test_odd_layouts_scan_exactly_or_not_at_all() -> None:
    records = _odd_records()
    data, starts, ends = framed(list(records.values()))
    plain = _assert_scan_matches_decoder(data, starts, ends)
    scan = scan_examples(np.frombuffer(data, np.uint8), np.array(starts), np.array(ends), KEYS)
    names = list(records)
    plain_names = {names[i] for i in np.flatnonzero(scan.plain)}
    # The encodings the scan must take (the writer's, in any order), and those it must
    # leave to the general decoder.
    assert {"plain", "reordered", "no_labels", "empty_labels", "video_id", "both_ids"} <= (
        plain_names
    )
    assert {"negative_label", "big_label", "trailer_field_2", "nan", "wrong_dim"} <= plain_names
    assert "wide_feature" in plain_names
    assert not plain_names & {
        "other_trailer",
        "unpacked_labels",
        "extra_feature",
        "non_utf8_key",
        "duplicate_key",
        "two_ids",
        "empty_id_list",
        "long_length_varint",
        "odd_float_bytes",
        "truncated_inside",
        "empty",
        "not_an_example",
    }
    assert plain == len(plain_names)


def _write(path: Path, payloads: list[bytes]) -> Path:
    with TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    return path


@pytest.mark.parametrize("skip_corrupt", [True, False])
@pytest.mark.parametrize("num_classes", [None, 200])
def test_read_shard_with_odd_records_equals_sequential(
    tmp_path: Path, skip_corrupt: bool, num_classes: int | None
) -> None:
    odd = _odd_records()
    good = [encode_example(_features(vid=f"g{i}".encode())) for i in range(5)]
    for name, payload in odd.items():
        path = _write(tmp_path / f"{name}.tfrecord", [good[0], payload, good[1]])
        _compare_read_shard(path, skip_corrupt=skip_corrupt, num_classes=num_classes)
    # Every odd record in one file, and files that start with one.
    _compare_read_shard(
        _write(tmp_path / "all.tfrecord", [*good[:2], *odd.values(), *good[2:]]),
        skip_corrupt=skip_corrupt,
        num_classes=num_classes,
    )
    for name in ("wrong_dim", "nan", "unpacked_labels", "not_an_example", "empty"):
        path = _write(tmp_path / f"first_{name}.tfrecord", [odd[name], *good])
        _compare_read_shard(path, skip_corrupt=skip_corrupt, num_classes=num_classes)


def test_dims_are_those_most_records_have(tmp_path: Path) -> None:
    """Widths are those most records have, whichever decoder reads the record that has
    other ones, and wherever it lies: an odd record first does not set them."""
    nan8 = encode_example({**_features(dim=8), "mean_rgb": np.full(8, np.nan, np.float32)})
    odd7 = _example(
        _entry(b"id", _bytes_list(b"u7")),
        _entry(b"labels", _unpacked_int64([1])),
        _entry(b"mean_rgb", _float_list(np.ones(7, np.float32))),
        _entry(b"mean_audio", _float_list(np.ones(4, np.float32))),
    )
    cases = {
        "nan_then_7_then_8": [nan8, encode_example(_features(dim=7)), encode_example(_features())],
        "unpacked_7_first": [odd7, encode_example(_features()), encode_example(_features())],
        "nan_then_unpacked_7": [nan8, odd7, encode_example(_features())],
    }
    for name, payloads in cases.items():
        path = _write(tmp_path / f"{name}.tfrecord", payloads)
        chunk = _compare_read_shard(path, skip_corrupt=True)
        kept = [1, 2] if name == "unpacked_7_first" else [2]
        assert chunk.record_indices.tolist() == kept and chunk.dims["rgb"] == 8, name
    path = _write(tmp_path / "given.tfrecord", cases["nan_then_7_then_8"])
    chunk = read_shard(str(path), ShardOptions(skip_corrupt=True, dims={"rgb": 8, "audio": 4}))
    assert chunk.num_videos == 1 and chunk.record_indices.tolist() == [2]


def test_fuzzed_records_equal_sequential(tmp_path: Path) -> None:
    """Single-byte changes anywhere in the headers of a record (CRCs rewritten): the
    scan is exact wherever it says plain, and read_shard equals the reference."""
    rng = np.random.default_rng(11)
    base = [encode_example(_features(vid=f"f{i}".encode(), labels=(i, 300 + i))) for i in range(4)]
    payloads = list(base)
    header_positions = [p for p in range(len(base[1])) if not 30 < p < len(base[1]) - 60]
    for position in header_positions:
        for value in rng.integers(0, 256, 3).tolist():
            mutated = bytearray(base[1])
            mutated[position] = value
            payloads.append(bytes(mutated))
    payloads.append(base[2][:-1])
    _assert_scan_matches_decoder(*framed(payloads))
    path = _write(tmp_path / "fuzz.tfrecord", payloads)
    for skip in (True, False):
        _compare_read_shard(path, skip_corrupt=skip, num_classes=1000)


# ---------------------------------------------------------------- framing


def _framing_cases(tmp_path: Path) -> dict[str, Path]:
    payloads = [encode_example(_features(vid=f"c{i}".encode())) for i in range(4)]
    clean = _write(tmp_path / "clean.tfrecord", payloads)
    raw = clean.read_bytes()
    starts = [0]
    for payload in payloads:
        starts.append(starts[-1] + 16 + len(payload))

    def variant(name: str, data: bytes) -> Path:
        path = tmp_path / f"{name}.tfrecord"
        path.write_bytes(data)
        return path

    def flip(at: int) -> bytes:
        data = bytearray(raw)
        data[at] ^= 0x40
        return bytes(data)

    return {
        "clean": clean,
        "data_crc": variant("data_crc", flip(starts[1] + 30)),
        "two_data_crcs": variant("two_data_crcs", flip(starts[3] + 20)[: starts[4]]),
        "length_crc": variant("length_crc", flip(starts[2] + 9)),
        "corrupt_length": variant("corrupt_length", flip(starts[2] + 1)),
        "huge_length": variant(
            "huge_length", raw[: starts[1]] + struct.pack("<Q", 2**63) + raw[starts[1] + 8 :]
        ),
        "truncated_header": variant("truncated_header", raw[: starts[3] + 5]),
        "truncated_payload": variant("truncated_payload", raw[: starts[3] + 40]),
        "no_data_crc": variant("no_data_crc", raw[:-2]),
        "not_tfrecord": variant("not_tfrecord", b"id,labels\nabc,1 2\n" * 4),
        "short": variant("short", b"abc"),
        "empty": variant("empty", b""),
    }


def test_read_spans_equals_streaming_reader(tmp_path: Path) -> None:
    for name, path in _framing_cases(tmp_path).items():
        for check in (True, False):
            errors: list[BadInputError] = []
            with TFRecordReader(path, check, errors=errors) as reader:
                expected = list(reader.indexed())
            spans = read_spans(path, check)
            got = [(int(spans.index[i]), spans.payload(i)) for i in range(len(spans))]
            assert got == expected, name
            ours = [*spans.crc_errors, *([spans.fatal] if spans.fatal else [])]
            assert [str(e) for e in ours] == [str(e) for e in errors], name


def test_read_shard_framing_faults_equal_sequential(tmp_path: Path) -> None:
    for path in _framing_cases(tmp_path).values():
        for skip in (True, False):
            _compare_read_shard(path, skip_corrupt=skip)


# ---------------------------------------------------------------- varints, dtype


def test_decode_varints_matches_protobuf_and_flags_bad_runs() -> None:
    runs = [
        [0, 1, 127, 128, 300, 3861],
        [],
        [2**31, 2**62, -1, -(2**63), 2**63 - 1],
        [5],
    ]
    encoded = [b"".join(_varint(v % (1 << 64)) for v in run) for run in runs]
    bad = [b"\x85", b"\xff" * 11 + b"\x01", b"\xff" * 9 + b"\x02", b"\x81\x01\x80"]
    blobs = [*encoded, *bad]
    data = b"".join(blobs) + b"\x00" * 4
    lengths = np.array([len(b) for b in blobs], np.int64)
    starts = np.cumsum(lengths) - lengths
    values, counts, valid = decode_varints(np.frombuffer(data, np.uint8), starts, lengths)
    assert counts.sum() == len(values)
    assert valid.tolist() == [True] * len(runs) + [False] * len(bad)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i, run in enumerate(runs):
        assert values[offsets[i] : offsets[i + 1]].tolist() == run
        ref = parse_example(encode_example({"labels": np.array(run, np.int64)}))
        assert list(ref.features.feature["labels"].int64_list.value) == run


def float16_rounding_cases() -> np.ndarray:
    """Every rounding decision of float16 (float32 values, both signs): each half value,
    the float32 midpoints between neighbours and one float32 step either side, the
    subnormal range and overflow."""
    halves = np.arange(0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = (halves[:-1] + (halves[1:] - halves[:-1]) / 2).astype(np.float32)
    steps = np.concatenate([mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf)])
    extremes = np.array([65504, 65519.99, 65520, 1e10, 3e38, 1e-30, 0.0, -0.0], np.float32)
    values = np.concatenate([halves, steps, extremes, RNG.normal(size=1000).astype(np.float32)])
    return np.concatenate([values, -values])


def test_video_dtype_conversion_matches_numpy() -> None:
    values = float16_rounding_cases().reshape(-1, 2)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    got = as_video_dtype(values, "float16")
    assert got.dtype == np.float16 and got.tobytes() == expected.tobytes()
    assert as_video_dtype(values, "float32") is values


def test_options_are_independent_of_the_path(smoke_dir: Path) -> None:
    """check_crc off and given dims: the same records as the reference."""
    path = smoke_dir / "validate00.tfrecord"
    options = ShardOptions(check_crc=False, dims={"rgb": 1024, "audio": 128})
    _assert_same_chunk(read_shard(str(path), options), _sequential_shard(path, options))
    other = replace(options, dims={"rgb": 1000, "audio": 128}, skip_corrupt=True)
    chunk = read_shard(str(path), other)
    assert chunk.num_videos == 0 and len(chunk.skipped) == 312
    assert "has 1024 values, expected 1000" in str(chunk.skipped[0])

