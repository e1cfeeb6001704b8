"""TensorFlow's fastest parse of video-level YouTube-8M shards: the reference of
``bench_ingest.py``. Runs in the TensorFlow venv (``.venv-tf``), in its own process.

Each configuration reads every file with ``TFRecordDataset`` (which checks both CRCs of
every record), batches 256 serialized records and parses each batch with one vectorised
``tf.io.parse_example`` of id, labels, mean_rgb and mean_audio, then iterates to the end.
Datasets are built and traced once, and each is run once untimed, so a timed pass is
reading and parsing only (the files are then in the OS page cache).

    .venv-tf/bin/python bench/tf_parse.py DIR [--repeats 5]   # one JSON summary
    .venv-tf/bin/python bench/tf_parse.py DIR --serve         # a timed pass of every
        configuration for each "run" line on stdin, one JSON line each (so that a caller
        can alternate TensorFlow with its own runs on a shared machine)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

FEATURES = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "labels": tf.io.VarLenFeature(tf.int64),
    "mean_rgb": tf.io.FixedLenFeature([1024], tf.float32),
    "mean_audio": tf.io.FixedLenFeature([128], tf.float32),
}
BATCH = 256


def _parse(batch: tf.Tensor) -> dict[str, tf.Tensor]:
    return tf.io.parse_example(batch, FEATURES)


def _configs(files: list[str]) -> dict[str, tf.data.Dataset]:
    """The candidates; on 2 cores the plain sequential pipeline is usually the fastest."""
    auto = tf.data.AUTOTUNE

    def records(**kw: object) -> tf.data.Dataset:
        return tf.data.TFRecordDataset(files, **kw).batch(BATCH)

    return {
        "sequential": records().map(_parse),
        "sequential+prefetch": records().map(_parse).prefetch(auto),
        "2 readers+parallel map": records(num_parallel_reads=2)
        .map(_parse, num_parallel_calls=auto)
        .prefetch(auto),
        "autotune readers, 8 MB buffers": records(num_parallel_reads=auto, buffer_size=8 << 20)
        .map(_parse, num_parallel_calls=auto)
        .prefetch(auto),
    }


def _timed(ds: tf.data.Dataset) -> dict[str, float]:
    """Records, wall seconds, and CPU seconds of the process (all of TensorFlow's threads)."""
    start, cpu = time.perf_counter(), time.process_time()
    records = 0
    for batch in ds:
        records += int(batch["mean_rgb"].shape[0])
    return {
        "records": records,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
    }


# Pause before each timed pass: thread pools (TensorFlow's, and the other side's in
# bench_ingest.py) spin for a while after their work, and would take cores from
# whatever is timed next. bench_ingest.py pauses as long before each of its runs.
SETTLE_S = 0.3


def _pass(configs: dict[str, tf.data.Dataset]) -> dict[str, dict[str, float]]:
    timings = {}
    for name, ds in configs.items():
        time.sleep(SETTLE_S)
        timings[name] = _timed(ds)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args(argv)
    files = sorted(str(p) for p in args.folder.glob("*.tfrecord"))
    if not files:
        print(f"no .tfrecord files in {args.folder}", file=sys.stderr)
        return 2
    configs = _configs(files)
    _pass(configs)  # warm-up: tracing, thread pools, page cache
    info = {"tensorflow": tf.__version__, "files": len(files), "cpu_count": os.cpu_count()}
    if args.serve:
        print(json.dumps({"ready": True, **info}), flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            print(json.dumps(_pass(configs)), flush=True)
        return 0
    runs = [_pass(configs) for _ in range(args.repeats)]
    summary = {}
    for name in configs:
        seconds = [run[name]["seconds"] for run in runs]
        records = runs[0][name]["records"]
        median = statistics.median(seconds)
        summary[name] = {"records": records, "seconds": seconds, "records_per_s": records / median}
    best = max(summary, key=lambda name: summary[name]["records_per_s"])
    print(json.dumps({**info, "configs": summary, "best": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
