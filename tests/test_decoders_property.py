"""Property tests (hypothesis) of the TFRecord framing and the Example/SequenceExample
decoders against the protobuf library's own parse: on any input, ours gives the same
decode or a clear error, never a different decode.

``YT8M_HYPOTHESIS_EXAMPLES`` sets how many cases each test draws (default 150; the
counts of a longer run are in RELIABILITY.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.pb_reference import new_example, parse_example, parse_sequence_example
from yt8mkit.data.example import Feature, WireError, decode_example, decode_sequence_example
from yt8mkit.data.shard import ShardOptions, read_shard
from yt8mkit.data.tfrecord import TFRecordReader, TFRecordWriter, read_spans
from yt8mkit.errors import BadInputError

CASES = settings(
    max_examples=int(os.environ.get("YT8M_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# No subnormals: training sets the CPU to flush them (torch.set_flush_denormal) for the
# rest of a test process, and then hypothesis cannot draw them, nor could a float32
# survive protobuf's double. The bytes of a float are copied, never computed on.
_float32 = st.floats(width=32, allow_nan=False, allow_subnormal=False)
_feature = st.one_of(
    st.tuples(st.just("bytes_list"), st.lists(st.binary(max_size=6), max_size=4)),
    st.tuples(st.just("float_list"), st.lists(_float32, max_size=6)),
    st.tuples(st.just("int64_list"), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6)),
    st.tuples(st.just("empty"), st.just([])),
)
_features = st.dictionaries(st.text(max_size=6), _feature, max_size=4)


def _fill(message_features: object, features: dict[str, tuple[str, list]]) -> None:
    for key, (kind, values) in features.items():
        feature = message_features.feature[key]  # type: ignore[attr-defined]
        if kind == "empty":
            continue
        getattr(feature, kind).value.extend(values)
        getattr(feature, kind).SetInParent()


def _example(features: dict[str, tuple[str, list]]) -> bytes:
    message = new_example()
    _fill(message.features, features)
    return message.SerializeToString()


def _assert_feature(ours: Feature, theirs: object) -> None:
    kind = theirs.WhichOneof("kind") or "empty"  # type: ignore[attr-defined]
    assert ours.kind == kind
    if kind == "bytes_list":
        assert ours.bytes_list == list(theirs.bytes_list.value)  # type: ignore[attr-defined]
    elif kind == "float_list":
        want = np.array(theirs.float_list.value, np.float32)  # type: ignore[attr-defined]
        assert np.array_equal(ours.float_list, want, equal_nan=True)
    elif kind == "int64_list":
        assert ours.int64_list.tolist() == list(theirs.int64_list.value)  # type: ignore[attr-defined]


def _assert_features(ours: dict[str, Feature], theirs: object) -> None:
    mapping = theirs.feature  # type: ignore[attr-defined]
    assert set(ours) == set(mapping)
    for key, feature in ours.items():
        _assert_feature(feature, mapping[key])


def _mutate(data: st.DataObject, raw: bytes) -> bytes:
    """Flip, overwrite, insert or cut bytes: 1-3 changes anywhere."""
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "set", "insert", "cut"]))
        at = data.draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and out:
            out[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "cut":
            del out[at : at + data.draw(st.integers(1, 8))]
    note(f"bytes: {bytes(out).hex()}")
    return bytes(out)


def _parse_both(parse: object, decode: object, raw: bytes) -> tuple[object, object]:
    try:
        theirs = parse(raw)  # type: ignore[operator]
    except DecodeError:
        theirs = None
    try:
        ours = decode(raw)  # type: ignore[operator]
    except WireError:
        ours = None
    return theirs, ours


# ---------------------------------------------------------------- Example


@CASES
@given(_features)
def test_example_decodes_as_protobuf(features: dict[str, tuple[str, list]]) -> None:
    raw = _example(features)
    _assert_features(decode_example(raw), parse_example(raw).features)


@CASES
@given(_features, st.data())
def test_mutated_example_decodes_as_protobuf_or_is_refused(
    features: dict[str, tuple[str, list]], data: st.DataObject
) -> None:
    raw = _mutate(data, _example(features))
    theirs, ours = _parse_both(parse_example, decode_example, raw)
    if ours is not None:  # our clear error is allowed; a different decode is not
        assert theirs is not None, "we decoded bytes that protobuf refuses"
        _assert_features(ours, theirs.features)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- SequenceExample


_frames = st.lists(st.binary(min_size=2, max_size=2), max_size=4)


def _sequence_example(context: dict[str, tuple[str, list]], lists: dict[str, list[bytes]]
                      ) -> bytes:
    message = parse_sequence_example(b"")
    _fill(message.context, context)
    for key, frames in lists.items():
        feature_list = message.feature_lists.feature_list[key]
        for frame in frames:
            feature_list.feature.add().bytes_list.value.append(frame)
    return message.SerializeToString()


def _assert_sequence(ours: tuple, theirs: object) -> None:
    context, lists = ours
    _assert_features(context, theirs.context)  # type: ignore[attr-defined]
    mapping = theirs.feature_lists.feature_list  # type: ignore[attr-defined]
    assert set(lists) == set(mapping)
    for key, frames in lists.items():
        want = mapping[key].feature
        if isinstance(frames, np.ndarray):  # one row of bytes a frame
            assert len(frames) == len(want)
            for row, feature in zip(frames, want):
                assert feature.WhichOneof("kind") == "bytes_list"
                assert [row.tobytes()] == list(feature.bytes_list.value)
        else:
            assert len(frames) == len(want)
            for feature, reference in zip(frames, want):
                _assert_feature(feature, reference)


@CASES
@given(_features, st.dictionaries(st.text(max_size=4), _frames, max_size=3), st.data())
def test_sequence_example_decodes_as_protobuf_mutated_or_not(
    context: dict[str, tuple[str, list]], lists: dict[str, list[bytes]], data: st.DataObject
) -> None:
    raw = _sequence_example(context, lists)
    _assert_sequence(decode_sequence_example(raw), parse_sequence_example(raw))
    raw = _mutate(data, raw)
    theirs, ours = _parse_both(parse_sequence_example, decode_sequence_example, raw)
    if ours is not None:
        assert theirs is not None, "we decoded bytes that protobuf refuses"
        _assert_sequence(ours, theirs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the ingest path


_yt8m = st.fixed_dictionaries({
    "id": st.binary(min_size=1, max_size=6),
    "labels": st.lists(st.integers(0, 50), max_size=4),
    "rgb": st.lists(_float32.filter(lambda x: abs(x) < 1e30), min_size=4, max_size=4),
    "audio": st.lists(_float32.filter(lambda x: abs(x) < 1e30), min_size=2, max_size=2),
})


def _yt8m_record(fields: dict) -> bytes:
    return _example({
        "id": ("bytes_list", [fields["id"]]),
        "labels": ("int64_list", fields["labels"]),
        "mean_rgb": ("float_list", fields["rgb"]),
        "mean_audio": ("float_list", fields["audio"]),
    })


@CASES
@given(_yt8m, st.data())
def test_ingest_keeps_a_mutated_record_only_as_protobuf_reads_it(
    tmp_path_factory: object, fields: dict, data: st.DataObject
) -> None:
    """The whole shard path (framing, the C scan and checks, the fast gather, the
    general decoder): a record it keeps is the record protobuf reads, field for field."""
    raw = _mutate(data, _yt8m_record(fields))
    good = _yt8m_record({"id": b"zz_good", "labels": [1], "rgb": [0.0] * 4, "audio": [0.0] * 2})
    path = Path(tmp_path_factory.mktemp("shard")) / "s.tfrecord"  # type: ignore[attr-defined]
    with TFRecordWriter(path) as writer:
        for payload in (good, raw, good.replace(b"zz_good", b"zz_last")):
            writer.write(payload)
    chunk = read_shard(str(path), ShardOptions(skip_corrupt=True, num_classes=51,
                                               dims={"rgb": 4, "audio": 2}))
    kept = chunk.record_indices.tolist()
    assert 0 in kept and 2 in kept
    if 1 not in kept:
        return
    row = kept.index(1)
    theirs = parse_example(raw).features.feature
    assert chunk.ids[row] == theirs["id"].bytes_list.value[0]
    start, stop = chunk.label_counts[:row].sum(), chunk.label_counts[: row + 1].sum()
    assert chunk.label_indices[start:stop].tolist() == list(theirs["labels"].int64_list.value)
    for m, key in (("rgb", "mean_rgb"), ("audio", "mean_audio")):
        want = np.array(theirs[key].float_list.value, np.float32)
        assert np.array_equal(chunk.video[m][row], want)


# ---------------------------------------------------------------- TFRecord framing


@CASES
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5), st.data())
def test_framing_yields_only_the_records_written(
    tmp_path_factory: object, payloads: list[bytes], data: st.DataObject
) -> None:
    """Any changed, inserted or cut bytes: both readers yield a record only as it was
    written, at its index (both CRCs checked), and otherwise name a fault."""
    path = Path(tmp_path_factory.mktemp("frames")) / "f.tfrecord"  # type: ignore[attr-defined]
    with TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    path.write_bytes(_mutate(data, path.read_bytes()))
    errors: list[BadInputError] = []
    with TFRecordReader(path, errors=errors) as reader:
        streamed = list(reader.indexed())
    spans = read_spans(path)
    bulk = [(int(i), spans.payload(k)) for k, i in enumerate(spans.index)]
    assert streamed == bulk
    for index, payload in streamed:
        assert index < len(payloads) and payload == payloads[index]
