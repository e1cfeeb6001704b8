"""tf.train.Example / SequenceExample wire format, decoded straight into numpy.

The protobuf runtime parses fast but hands repeated floats back one Python object at a
time (about 18 µs a video-level record here); walking the wire format ourselves and
viewing packed floats with ``np.frombuffer`` costs a few µs. Only the messages of
``tensorflow/core/example/{example,feature}.proto`` are understood:

    Example          { Features features = 1; }
    SequenceExample  { Features context = 1; FeatureLists feature_lists = 2; }
    Features         { map<string, Feature> feature = 1; }
    FeatureLists     { map<string, FeatureList> feature_list = 1; }
    FeatureList      { repeated Feature feature = 1; }
    Feature          { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                               Int64List int64_list = 3; } }

Malformed input raises ``WireError``; callers add the file and record to the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_WT_VARINT, _WT_I64, _WT_LEN, _WT_I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed Example or SequenceExample."""


@dataclass(frozen=True)
class Feature:
    """One decoded ``tf.train.Feature``: exactly one of the three lists is set."""

    bytes_list: list[bytes] | None = None
    float_list: np.ndarray | None = None
    int64_list: np.ndarray | None = None

    @property
    def kind(self) -> str:
        if self.bytes_list is not None:
            return "bytes_list"
        if self.float_list is not None:
            return "float_list"
        if self.int64_list is not None:
            return "int64_list"
        return "empty"


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            # Bits beyond 64 of a 10-byte varint are dropped, as protobuf drops them.
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def _skip(buf: memoryview, pos: int, end: int, wire_type: int) -> int:
    if wire_type == _WT_VARINT:
        return _varint(buf, pos, end)[1]
    if wire_type == _WT_LEN:
        length, pos = _varint(buf, pos, end)
        pos += length
    elif wire_type == _WT_I64:
        pos += 8
    elif wire_type == _WT_I32:
        pos += 4
    else:
        raise WireError(f"unsupported wire type {wire_type}")
    if pos > end:
        raise WireError("field runs past the end of its message")
    return pos


def _fields(buf: memoryview, pos: int, end: int) -> Iterable[tuple[int, int, int, int]]:
    """Yields (field number, wire type, start, end) of each field; for LEN fields the
    span is the payload, for others it is the encoded value."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0 or key > 0xFFFFFFFF:  # a tag is a 32-bit varint; 0 is no field
            raise WireError(f"invalid field tag {key}")
        if wire_type == _WT_LEN:
            length, pos = _varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, wire_type, pos, stop
            pos = stop
        else:
            stop = _skip(buf, pos, end, wire_type)
            yield number, wire_type, pos, stop
            pos = stop


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _list_items(buf: memoryview, number: int, start: int, end: int) -> list:
    """The values of one BytesList (1), FloatList (2, as arrays) or Int64List (3)."""
    if number == 1:
        return [bytes(buf[fs:fe]) for n, wt, fs, fe in _fields(buf, start, end)
                if n == 1 and wt == _WT_LEN]
    items: list = []
    for n, wt, fs, fe in _fields(buf, start, end):
        if n != 1:
            continue
        if number == 2:
            if wt == _WT_LEN:
                if (fe - fs) % 4:
                    raise WireError("packed float list length is not a multiple of 4")
                items.append(np.frombuffer(buf[fs:fe], dtype="<f4"))
            elif wt == _WT_I32:
                items.append(np.frombuffer(buf[fs:fe], dtype="<f4"))
        elif wt == _WT_LEN:
            pos = fs
            while pos < fe:
                value, pos = _varint(buf, pos, fe)
                items.append(_signed64(value))
        elif wt == _WT_VARINT:
            items.append(_signed64(_varint(buf, fs, fe)[0]))
    return items


def _decode_feature(buf: memoryview, start: int, end: int) -> Feature:
    return _merged_feature(buf, [(start, end)])


def _merged_feature(buf: memoryview, spans: list[tuple[int, int]]) -> Feature:
    """A Feature from one or more encodings of it (a message repeated is merged), as
    protobuf reads it: the lists are a oneof, so a list of another kind replaces the
    one before it, and the same kind again adds to it."""
    kind = 0
    items: list = []
    for start, end in spans:
        for number, wire_type, s, e in _fields(buf, start, end):
            if wire_type != _WT_LEN or number not in (1, 2, 3):
                continue
            if number != kind:
                kind, items = number, []
            items.extend(_list_items(buf, number, s, e))
    if kind == 1:
        return Feature(bytes_list=items)
    if kind == 2:
        if len(items) == 1:
            return Feature(float_list=items[0])
        return Feature(float_list=np.concatenate(items) if items else np.zeros(0, "<f4"))
    if kind == 3:
        return Feature(int64_list=np.array(items, dtype=np.int64))
    return Feature()


def _decode_map(
    buf: memoryview, start: int, end: int
) -> Iterable[tuple[str, list[tuple[int, int]], bool]]:
    """Map entries of ``Features``/``FeatureLists``: yields (key, the spans of its value
    message, to be merged, whether the entry is kept). An entry holding any other field
    (or a key or value of another wire type) is not kept, as protobuf's runtime keeps
    such an entry as unknown data rather than in the map; its value is still to be
    decoded, since protobuf refuses the message when that value is malformed."""
    for number, wire_type, s, e in _fields(buf, start, end):
        if number != 1 or wire_type != _WT_LEN:
            continue
        key = ""
        values: list[tuple[int, int]] = []
        unknown = False
        for n, wt, fs, fe in _fields(buf, s, e):
            if n == 1 and wt == _WT_LEN:
                try:
                    key = str(buf[fs:fe], "utf-8")
                except UnicodeDecodeError as err:
                    raise WireError("feature name is not UTF-8") from err
            elif n == 2 and wt == _WT_LEN:
                values.append((fs, fe))
            else:
                unknown = True
        yield key, values, not unknown


def _packed_feature(buf: bytes, start: int, end: int) -> Feature | None:
    """The common encoding of a Feature: one list with one packed (or one bytes) field,
    all lengths under 2^14. Inline varints make this the hot path of ingest; anything
    else returns None and takes the general walk."""
    if end - start < 2:
        return None
    kind = buf[start]
    p = start + 1
    length = buf[p]
    p += 1
    if length >= 0x80:
        if p >= end or buf[p] >= 0x80:
            return None
        length = (length & 0x7F) | (buf[p] << 7)
        p += 1
    if p + length != end or length < 2 or buf[p] != 0x0A:
        return None
    p += 1
    inner = buf[p]
    p += 1
    if inner >= 0x80:
        if p >= end or buf[p] >= 0x80:
            return None
        inner = (inner & 0x7F) | (buf[p] << 7)
        p += 1
    if p + inner != end:
        return None
    if kind == 0x12:
        if inner % 4:
            raise WireError("packed float list length is not a multiple of 4")
        return Feature(float_list=np.frombuffer(buf, dtype="<f4", count=inner // 4, offset=p))
    if kind == 0x0A:
        return Feature(bytes_list=[bytes(buf[p:end])])
    if kind == 0x1A:
        ints = []
        while p < end:
            value = buf[p]
            if value < 0x80:
                p += 1
            else:
                value, p = _varint(memoryview(buf), p, end)
                value = _signed64(value)
            ints.append(value)
        return Feature(int64_list=np.array(ints, dtype=np.int64))
    return None


def decode_features(buf: bytes | memoryview, start: int, end: int) -> dict[str, Feature]:
    """A ``Features`` message into {name: Feature}; a repeated key keeps the last, as protobuf."""
    out: dict[str, Feature] = {}
    raw = buf if isinstance(buf, bytes) else bytes(buf)
    p = start
    while p < end:
        entry_start = p
        if raw[p] != 0x0A:
            break
        p += 1
        length = raw[p] if p < end else 0x80
        p += 1
        if length >= 0x80:
            length, p = _varint(memoryview(raw), entry_start + 1, end)
        stop = p + length
        if stop > end:
            raise WireError("map entry runs past the end of its message")
        # key field: 0x0A, 1-byte length (names are short), name; value field: 0x12, length, Feature
        if p + 1 < stop and raw[p] == 0x0A and raw[p + 1] < 0x80:
            key_end = p + 2 + raw[p + 1]
            if key_end + 1 < stop and raw[key_end] == 0x12:
                v = key_end + 1
                vlen = raw[v]
                v += 1
                if vlen >= 0x80:
                    vlen, v = _varint(memoryview(raw), key_end + 1, stop)
                if v + vlen == stop:
                    feature = _packed_feature(raw, v, stop)
                    if feature is not None:
                        try:
                            out[raw[p + 2 : key_end].decode()] = feature
                        except UnicodeDecodeError as err:
                            raise WireError("feature name is not UTF-8") from err
                        p = stop
                        continue
        view = memoryview(raw)
        for key, spans, keep in _decode_map(view, entry_start, stop):
            feature = _merged_feature(view, spans)  # decoded even if left out: checked
            if keep:
                out[key] = feature
        p = stop
    if p < end:
        view = memoryview(raw)
        for key, spans, keep in _decode_map(view, p, end):
            feature = _merged_feature(view, spans)
            if keep:
                out[key] = feature
    return out


def decode_example(payload: bytes | memoryview) -> dict[str, Feature]:
    """A serialized ``tf.train.Example`` into {name: Feature}."""
    raw = payload if isinstance(payload, bytes) else bytes(payload)
    # Fast path: one Features field spanning the whole message.
    if len(raw) > 2 and raw[0] == 0x0A:
        length, p = _varint(memoryview(raw), 1, len(raw))
        if p + length == len(raw):
            return decode_features(raw, p, len(raw))
    buf = memoryview(raw)
    features: dict[str, Feature] = {}
    for number, wire_type, s, e in _fields(buf, 0, len(buf)):
        if number == 1 and wire_type == _WT_LEN:
            features.update(decode_features(raw, s, e))
    return features


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _bytes_frames(buf: memoryview, start: int, end: int) -> np.ndarray | None:
    """Fast path for a FeatureList whose every Feature is one bytes value of the same
    length: the list is then a fixed stride of identical headers around each frame,
    which we verify byte for byte and view as an (n, dim) uint8 array without copying.
    Returns None when the list is not of that shape (the general walk handles it)."""
    if end <= start:
        return np.zeros((0, 0), dtype=np.uint8)
    # Read the first element's headers to learn the frame length.
    try:
        if buf[start] != 0x0A:
            return None
        l1, p = _varint(buf, start + 1, end)
        if buf[p] != 0x0A:
            return None
        l2, p = _varint(buf, p + 1, end)
        if buf[p] != 0x0A:
            return None
        dim, p = _varint(buf, p + 1, end)
    except (WireError, IndexError):
        return None
    header_len = p - start
    stride = header_len + dim
    if l2 != 1 + _varint_size(dim) + dim or l1 != 1 + _varint_size(l2) + l2:
        return None
    if (end - start) % stride:
        return None
    rows = np.frombuffer(buf[start:end], dtype=np.uint8).reshape(-1, stride)
    header = rows[0, :header_len]
    if not (rows[:, :header_len] == header).all():
        return None
    return rows[:, header_len:]


def _decode_feature_list(
    buf: memoryview, spans: list[tuple[int, int]]
) -> np.ndarray | list[Feature]:
    """A FeatureList from one or more encodings of it (merged: their features one after
    another)."""
    if len(spans) == 1:
        frames = _bytes_frames(buf, *spans[0])
        if frames is not None:
            return frames
    return [
        _decode_feature(buf, s, e)
        for start, end in spans
        for n, wt, s, e in _fields(buf, start, end)
        if n == 1 and wt == _WT_LEN
    ]


def decode_sequence_example(
    payload: bytes | memoryview,
) -> tuple[dict[str, Feature], dict[str, np.ndarray | list[Feature]]]:
    """A serialized ``tf.train.SequenceExample`` into (context, feature lists).

    A feature list of equal-length bytes features comes back as an (n, dim) uint8
    array; any other as a list of Feature.
    """
    raw = payload if isinstance(payload, bytes) else bytes(payload)
    buf = memoryview(raw)
    context: dict[str, Feature] = {}
    lists: dict[str, np.ndarray | list[Feature]] = {}
    for number, wire_type, s, e in _fields(buf, 0, len(buf)):
        if wire_type != _WT_LEN:
            continue
        if number == 1:
            context.update(decode_features(raw, s, e))
        elif number == 2:
            for key, spans, keep in _decode_map(buf, s, e):
                feature_list = _decode_feature_list(buf, spans)
                if keep:
                    lists[key] = feature_list
    return context, lists


# ---------------------------------------------------------------- encoding


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint((number << 3) | _WT_LEN) + _encode_varint(len(payload)) + payload


def encode_feature(value: bytes | Sequence[bytes] | np.ndarray | Sequence[int]) -> bytes:
    """One ``Feature``: bytes → bytes_list, float arrays → float_list, ints → int64_list."""
    if isinstance(value, bytes):
        return _len_field(1, _len_field(1, value))
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        packed = np.ascontiguousarray(value, dtype="<f4").tobytes()
        return _len_field(2, _len_field(1, packed))
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu":
        packed = b"".join(_encode_varint(int(v)) for v in value)
        return _len_field(3, _len_field(1, packed))
    items = list(value)
    if items and isinstance(items[0], bytes):
        return _len_field(1, b"".join(_len_field(1, v) for v in items))
    packed = b"".join(_encode_varint(int(v)) for v in items)
    return _len_field(3, _len_field(1, packed))


def encode_features(features: Mapping[str, bytes | np.ndarray | Sequence[int]]) -> bytes:
    entries = (
        _len_field(1, _len_field(1, key.encode()) + _len_field(2, encode_feature(value)))
        for key, value in features.items()
    )
    return b"".join(entries)


def encode_example(features: Mapping[str, bytes | np.ndarray | Sequence[int]]) -> bytes:
    """A ``tf.train.Example`` from {name: value}."""
    return _len_field(1, encode_features(features))


def encode_sequence_example(
    context: Mapping[str, bytes | np.ndarray | Sequence[int]],
    frame_lists: Mapping[str, np.ndarray],
) -> bytes:
    """A ``tf.train.SequenceExample``; each frame list is an (n, dim) uint8 array whose
    rows become one bytes feature each, as the YouTube-8M frame-level files hold them."""
    lists = b"".join(
        _len_field(
            1,
            _len_field(1, key.encode())
            + _len_field(
                2, b"".join(_len_field(1, encode_feature(row.tobytes())) for row in frames)
            ),
        )
        for key, frames in frame_lists.items()
    )
    return _len_field(1, encode_features(context)) + _len_field(2, lists)
