"""Framing, the Example codec and dequantization, checked on real TensorFlow-written files
against independent decoders (struct for framing, the protobuf runtime for messages)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from tests.pb_reference import parse_example, parse_sequence_example
from yt8mkit.data.example import (
    decode_example,
    decode_sequence_example,
    encode_example,
    encode_sequence_example,
)
from yt8mkit.data.quantize import dequantize, quantize
from yt8mkit.data.tfrecord import TFRecordWriter, iter_records, masked_crc32c

SMOKE_COUNTS = {
    "validate00.tfrecord": 312,
    "test0z.tfrecord": 305,
}


def _count_records(path: Path) -> int:
    """Walks the length fields only: an independent count of the records in a file."""
    data = path.read_bytes()
    offset = count = 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        offset += 16 + length
        count += 1
    assert offset == len(data)
    return count


def test_masked_crc_known_value() -> None:
    # CRC32C's standard check value is 0xE3069283 for b"123456789"; TFRecord masks it.
    plain = 0xE3069283
    expected = ((((plain >> 15) | (plain << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == expected


def test_smoke_record_counts(smoke_dir: Path) -> None:
    total = 0
    for path in sorted(smoke_dir.glob("*.tfrecord")):
        ours = sum(1 for _ in iter_records(path))
        assert ours == _count_records(path), path.name
        if path.name in SMOKE_COUNTS:
            assert ours == SMOKE_COUNTS[path.name]
        total += ours
    assert total == 1691 + 312 + 305


def test_smoke_examples_match_protobuf(smoke_dir: Path) -> None:
    checked = 0
    for path in sorted(smoke_dir.glob("*.tfrecord")):
        for i, payload in enumerate(iter_records(path)):
            if i % 37:
                continue
            ours = decode_example(payload)
            ref = parse_example(payload).features.feature
            assert ours["id"].bytes_list == list(ref["id"].bytes_list.value)
            if "labels" in ref:
                assert ours["labels"].int64_list.tolist() == list(ref["labels"].int64_list.value)
            else:
                assert path.name.startswith("test") and "labels" not in ours
            for key in ("mean_rgb", "mean_audio"):
                expected = np.array(ref[key].float_list.value, np.float32)
                np.testing.assert_array_equal(ours[key].float_list, expected)
            checked += 1
    assert checked > 50


def test_frame_level_records_match_protobuf_and_dequantize(frame_format_dir: Path) -> None:
    frames_seen = []
    for name in ("v1.tfrecord", "v2.tfrecord"):
        (payload,) = list(iter_records(frame_format_dir / name))
        context, lists = decode_sequence_example(payload)
        ref = parse_sequence_example(payload)
        assert context["id"].bytes_list == list(ref.context.feature["id"].bytes_list.value)
        for key, dim in (("rgb", 1024), ("audio", 128)):
            ref_frames = [
                f.bytes_list.value[0] for f in ref.feature_lists.feature_list[key].feature
            ]
            ours = lists[key]
            assert isinstance(ours, np.ndarray) and ours.shape == (len(ref_frames), dim)
            assert ours.tobytes() == b"".join(ref_frames)
            # The starter's Dequantize, written out in float32 as TensorFlow computes it.
            codes = np.frombuffer(ref_frames[3], np.uint8).astype(np.float32)
            expected = codes * np.float32(4.0 / 255.0) + np.float32(4.0 / 512.0 - 2.0)
            np.testing.assert_array_equal(dequantize(ours[3]), expected)
        frames_seen.append(len(lists["rgb"]))
    assert frames_seen == [184, 141]


def test_quantize_inverts_dequantize_and_clips() -> None:
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(quantize(dequantize(codes)), codes)
    x = np.random.default_rng(0).uniform(-1.9, 1.9, 10_000).astype(np.float32)
    assert np.abs(dequantize(quantize(x)) - x).max() <= 2.0 / 255.0 + 1e-6
    np.testing.assert_array_equal(quantize(np.array([-7.0, 9.0, np.float32(-2.0)])), [0, 255, 0])


def test_encode_round_trip_and_protobuf_reads_ours(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.normal(size=1024).astype(np.float32)
    payload = encode_example(
        {"id": b"abcd", "labels": np.array([0, 5, 3861, 300], np.int64), "mean_rgb": rgb}
    )
    ours = decode_example(payload)
    ref = parse_example(payload).features.feature
    assert list(ref["labels"].int64_list.value) == [0, 5, 3861, 300]
    np.testing.assert_array_equal(np.array(ref["mean_rgb"].float_list.value, np.float32), rgb)
    np.testing.assert_array_equal(ours["mean_rgb"].float_list, rgb)
    assert ours["labels"].int64_list.tolist() == [0, 5, 3861, 300]

    frames = rng.integers(0, 256, size=(7, 16), dtype=np.uint8)
    seq = encode_sequence_example({"id": b"v", "labels": [1]}, {"rgb": frames})
    _, lists = decode_sequence_example(seq)
    np.testing.assert_array_equal(lists["rgb"], frames)
    ref_seq = parse_sequence_example(seq)
    assert len(ref_seq.feature_lists.feature_list["rgb"].feature) == 7

    path = tmp_path / "x.tfrecord"
    with TFRecordWriter(path) as writer:
        writer.write(payload)
        writer.write(seq)
    assert list(iter_records(path)) == [payload, seq]


def test_decoder_handles_unpacked_and_reordered_fields() -> None:
    ex = parse_example(encode_example({"id": b"z"}))
    feature = ex.features.feature
    feature["labels"].int64_list.value.extend([7, 2])
    feature["mean_rgb"].float_list.value.extend([0.5, -1.25, 3.0])
    payload = ex.SerializeToString()
    ours = decode_example(payload)
    assert ours["labels"].int64_list.tolist() == [7, 2]
    np.testing.assert_array_equal(ours["mean_rgb"].float_list, [0.5, -1.25, 3.0])
    # Unpacked encoding of the same float list: field 1, wire type 5, one per value.
    unpacked = b"".join(b"\x0d" + struct.pack("<f", v) for v in (0.5, -1.25))
    float_list = b"\x12" + bytes([len(unpacked)]) + unpacked
    entry_key = b"\x0a\x01f"
    entry = entry_key + b"\x12" + bytes([len(float_list)]) + float_list
    features = b"\x0a" + bytes([len(entry)]) + entry
    raw = b"\x0a" + bytes([len(features)]) + features
    np.testing.assert_array_equal(decode_example(raw)["f"].float_list, [0.5, -1.25])


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**62])
def test_int64_varints_round_trip(value: int) -> None:
    payload = encode_example({"labels": np.array([value], np.int64)})
    assert decode_example(payload)["labels"].int64_list.tolist() == [value]
    assert list(parse_example(payload).features.feature["labels"].int64_list.value) == [value]
