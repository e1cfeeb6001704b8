"""Coverage-guided fuzzing (atheris) of the ingest decoder, for a bounded time.

Each input is one TFRecord payload, framed between two good YouTube-8M records and
read by ``read_shard`` (framing, the C scan and checks of ``native_examples.c``, the
fast gather, the general decoder), with ``--skip-corrupt``. The properties: no
exception but BadInputError; the good records around it kept; the payload kept only
as the protobuf runtime reads it (id, labels, features); and the general decoder
(``decode_example``) either refuses it or decodes it as protobuf does. Coverage guides
the Python code (the decoders and shard.py); the C extension is not instrumented
(that needs it built with clang's -fsanitize=fuzzer), so it is fuzzed as a black box.

    .venv/bin/python bench/fuzz_decoder.py -max_total_time=120 [-seed=1]

Prints the number of inputs run and writes ``results/fuzz_decoder.json``. A failure
stops the run with the input that caused it (atheris writes it as crash-*).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import numpy as np

    from tests.pb_reference import new_example, parse_example
    from yt8mkit.data.example import WireError, decode_example
    from yt8mkit.data.shard import ShardOptions, read_shard
    from yt8mkit.data.tfrecord import TFRecordWriter
    from yt8mkit.errors import BadInputError

from google.protobuf.message import DecodeError

ROOT = Path(__file__).resolve().parent
OPTIONS = ShardOptions(skip_corrupt=True, num_classes=100, dims={"rgb": 4, "audio": 2})
WORK = Path(tempfile.mkdtemp(prefix="yt8m-fuzz-"))
COUNT = {"inputs": 0, "kept": 0, "refused": 0}


def _record(vid: bytes, labels: list[int], rgb: list[float], audio: list[float]) -> bytes:
    message = new_example()
    features = message.features.feature
    features["id"].bytes_list.value.append(vid)
    features["labels"].int64_list.value.extend(labels)
    features["mean_rgb"].float_list.value.extend(rgb)
    features["mean_audio"].float_list.value.extend(audio)
    return message.SerializeToString()


GOOD = [_record(b"good0", [1], [0.0] * 4, [0.0] * 2),
        _record(b"good1", [2], [1.0] * 4, [1.0] * 2)]
SEEDS = [_record(b"seed", [3, 7], [0.5, -1.0, 2.0, 3.0], [0.25, 4.0])]


STARTED = time.perf_counter()


def _report() -> None:
    """Written every 1,000 inputs: libFuzzer ends the process without running atexit
    handlers (it prints its own count, "Done N runs")."""
    seconds = time.perf_counter() - STARTED
    result = {**COUNT, "seconds": round(seconds, 1), "argv": sys.argv[1:]}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "fuzz_decoder.json").write_text(json.dumps(result, indent=2))


def _check(payload: bytes) -> None:
    COUNT["inputs"] += 1
    if COUNT["inputs"] % 1000 == 0:
        _report()
    path = WORK / "s.tfrecord"
    with TFRecordWriter(path) as writer:
        for record in (GOOD[0], payload, GOOD[1]):
            writer.write(record)
    try:
        theirs = parse_example(payload)
    except DecodeError:
        theirs = None
    try:
        ours = decode_example(payload)
    except WireError:
        ours = None
    if ours is not None and theirs is None:
        raise AssertionError("the general decoder decoded bytes protobuf refuses")
    try:
        chunk = read_shard(str(path), OPTIONS)
    except BadInputError:
        raise AssertionError("--skip-corrupt raised") from None
    kept = chunk.record_indices.tolist()
    if 0 not in kept or 2 not in kept:
        raise AssertionError(f"a good record was lost: {kept}")
    if 1 not in kept:
        COUNT["refused"] += 1
        return
    COUNT["kept"] += 1
    if theirs is None:
        raise AssertionError("ingest kept a record protobuf refuses")
    row = kept.index(1)
    feature = theirs.features.feature
    if chunk.ids[row] != feature["id"].bytes_list.value[0]:
        raise AssertionError("id differs from protobuf's")
    start = int(chunk.label_counts[:row].sum())
    stop = start + int(chunk.label_counts[row])
    labels = feature["labels"].int64_list.value if "labels" in feature else []
    if chunk.label_indices[start:stop].tolist() != list(labels):
        raise AssertionError("labels differ from protobuf's")
    for m, key in (("rgb", "mean_rgb"), ("audio", "mean_audio")):
        want = np.array(feature[key].float_list.value, np.float32)
        got = chunk.video[m][row].astype(np.float32)
        # The store keeps float16 by default; ShardOptions here keeps float32.
        if not np.array_equal(got, want):
            raise AssertionError(f"{key} differs from protobuf's")


def main() -> None:
    for seed in SEEDS:
        _check(seed)
    corpus = WORK / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS + GOOD):
        (corpus / f"seed{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(corpus)], _check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
