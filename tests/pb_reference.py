"""An independent decoder for tests: the protobuf runtime with tf.train.Example's
messages declared from their .proto definitions (no TensorFlow needed)."""

from __future__ import annotations

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


@cache
def _classes() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="tf_example_for_tests.proto", package="tftest", syntax="proto3"
    )

    def message(name: str) -> descriptor_pb2.DescriptorProto:
        return fdp.message_type.add(name=name)

    def add(msg, name, number, type_, label=_F.LABEL_OPTIONAL, type_name=None, oneof=None):
        field = msg.field.add(name=name, number=number, type=type_, label=label)
        if type_name:
            field.type_name = type_name
        if oneof is not None:
            field.oneof_index = oneof

    add(message("BytesList"), "value", 1, _F.TYPE_BYTES, _F.LABEL_REPEATED)
    add(message("FloatList"), "value", 1, _F.TYPE_FLOAT, _F.LABEL_REPEATED)
    add(message("Int64List"), "value", 1, _F.TYPE_INT64, _F.LABEL_REPEATED)
    feature = message("Feature")
    feature.oneof_decl.add(name="kind")
    add(feature, "bytes_list", 1, _F.TYPE_MESSAGE, type_name=".tftest.BytesList", oneof=0)
    add(feature, "float_list", 2, _F.TYPE_MESSAGE, type_name=".tftest.FloatList", oneof=0)
    add(feature, "int64_list", 3, _F.TYPE_MESSAGE, type_name=".tftest.Int64List", oneof=0)

    def map_of(name: str, value_type: str) -> None:
        msg = message(name)
        entry = msg.nested_type.add(name="Entry")
        entry.options.map_entry = True
        add(entry, "key", 1, _F.TYPE_STRING)
        add(entry, "value", 2, _F.TYPE_MESSAGE, type_name=value_type)
        field_name = "feature" if name == "Features" else "feature_list"
        add(msg, field_name, 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, f".tftest.{name}.Entry")

    map_of("Features", ".tftest.Feature")
    add(message("FeatureList"), "feature", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".tftest.Feature")
    map_of("FeatureLists", ".tftest.FeatureList")
    add(message("Example"), "features", 1, _F.TYPE_MESSAGE, type_name=".tftest.Features")
    seq = message("SequenceExample")
    add(seq, "context", 1, _F.TYPE_MESSAGE, type_name=".tftest.Features")
    add(seq, "feature_lists", 2, _F.TYPE_MESSAGE, type_name=".tftest.FeatureLists")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tftest.{name}"))
        for name in ("Example", "SequenceExample")
    }


def parse_example(payload: bytes):
    return _classes()["Example"].FromString(payload)


def parse_sequence_example(payload: bytes):
    return _classes()["SequenceExample"].FromString(payload)


def new_example():
    return _classes()["Example"]()
