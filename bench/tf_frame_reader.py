"""TensorFlow's way of reading frame-level YouTube-8M TFRecords, timed: the reference the
frame loader is compared with. Runs in the TensorFlow venv (``.venv-tf``), started by
``bench_frame_loader.py``; prints one JSON object.

Per record: ``tf.io.parse_single_sequence_example`` (context id and labels, one bytes
feature a frame per modality), ``decode_raw`` to uint8, cast and dequantize exactly as
the starter code does, truncate to ``max_frames``, dense labels; then ``padded_batch``
(zero / False padding to the batch's longest video): the same batches yt8mkit's loader
yields.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

SCALAR = 4.0 / 255.0
BIAS = 4.0 / 512.0 - 2.0


def make_dataset(
    files: list[str], dims: dict[str, int], classes: int, batch: int, max_frames: int
) -> tf.data.Dataset:
    context = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
    }
    sequence = {m: tf.io.FixedLenSequenceFeature([], tf.string) for m in dims}

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        ctx, seq = tf.io.parse_single_sequence_example(serialized, context, sequence)
        out = {}
        for m, d in dims.items():
            codes = tf.reshape(tf.io.decode_raw(seq[m], tf.uint8), [-1, d])[:max_frames]
            out[m] = tf.cast(codes, tf.float32) * SCALAR + BIAS
        out["frame_mask"] = tf.ones([tf.shape(out[next(iter(dims))])[0]], tf.bool)
        out["targets"] = (
            tf.reduce_max(tf.one_hot(ctx["labels"].values, classes, dtype=tf.float32), axis=0)
            if classes
            else tf.zeros([0])
        )
        return out

    return (
        tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .padded_batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", nargs="+", required=True)
    parser.add_argument("--dims", required=True, help="JSON {modality: dim}")
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()
    dims = json.loads(args.dims)
    dataset = make_dataset(args.files, dims, args.classes, args.batch, args.max_frames)
    passes = []
    for _ in range(args.passes):
        videos = frames = 0
        start = time.perf_counter()
        for batch in dataset:
            videos += int(batch["frame_mask"].shape[0])
            frames += int(tf.reduce_sum(tf.cast(batch["frame_mask"], tf.int64)))
        passes.append({"seconds": time.perf_counter() - start, "videos": videos, "frames": frames})
    print(json.dumps({"tensorflow": tf.__version__, "passes": passes}))


if __name__ == "__main__":
    main()
