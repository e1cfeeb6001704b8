"""Frame loader throughput against TensorFlow reading the same frame-level TFRecords.

Generates a synthetic frame-level dataset (``--videos``, real dims: rgb 1024 + audio 128,
120-300 frames a video, 3862 classes), writes its TFRecords and ingests them into a store,
then makes full passes over every video in batches of ``--batch``:

- yt8mkit: ``frame_batches`` with 0 and 2 workers, with and without length bucketing
  (float32 dequantized, zero-padded, mask and dense targets);
- TensorFlow: ``bench/tf_frame_reader.py`` in ``.venv-tf`` (tf.data: TFRecordDataset,
  parse_single_sequence_example, decode_raw, dequantize, padded_batch), a separate process.

Every file was just written, so both read from the page cache. Each configuration runs
``--passes`` times; the table shows the best pass (videos/s), the JSON every pass
(``bench/results/frame_loader.json``).

    .venv/bin/python bench/bench_frame_loader.py
    .venv/bin/python bench/bench_frame_loader.py --videos 500 --keep /tmp/frames
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yt8mkit.data.frame_loader import frame_batches, padding_fraction
from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.loader import epoch_order
from yt8mkit.data.store import Store
from yt8mkit.data.synth import SynthConfig, generate

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "frame_loader.json"
TF_PYTHON = ROOT.parent / ".venv-tf" / "bin" / "python"
NUM_CLASSES = 3862


def prepare(folder: Path, videos: int) -> tuple[list[Path], Store, dict[str, float]]:
    """TFRecords and a store of ``videos`` synthetic frame-level videos (reused if there)."""
    timings: dict[str, float] = {}
    src, store_path = folder / "tfrecords", folder / "store"
    if not src.exists():
        start = time.perf_counter()
        config = SynthConfig(
            videos=videos, classes=NUM_CLASSES, seed=0, frames=True, videos_per_shard=250
        )
        generate(config, src)
        timings["generate_seconds"] = time.perf_counter() - start
    if not Store.is_store(store_path):
        start = time.perf_counter()
        ingest([src], store_path, IngestConfig(workers=2, num_classes=NUM_CLASSES))
        timings["ingest_seconds"] = time.perf_counter() - start
    return sorted(src.glob("train*.tfrecord")), Store(store_path), timings


def bench_loader(
    store: Store, batch: int, workers: int, bucket: bool, passes: int
) -> dict[str, Any]:
    rows = epoch_order(np.arange(store.num_videos), 0, 0)
    runs = []
    for epoch in range(passes):
        start = time.perf_counter()
        batches = list(
            frame_batches(
                store, rows, batch, workers=workers, bucket_by_length=bucket, seed=0, epoch=epoch
            )
        )
        seconds = time.perf_counter() - start
        runs.append(
            {
                "seconds": seconds,
                "videos": sum(len(b.rows) for b in batches),
                "padding": padding_fraction(batches),
            }
        )
        del batches
    return summarise(runs)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r["seconds"])
    return {"videos_per_second": best["videos"] / best["seconds"], "passes": runs}


def bench_tensorflow(files: list[Path], store: Store, batch: int, passes: int) -> dict[str, Any]:
    if not TF_PYTHON.exists():
        return {"error": f"not measured: {TF_PYTHON} is missing"}
    command = [
        str(TF_PYTHON),
        str(ROOT / "tf_frame_reader.py"),
        "--files",
        *map(str, files),
        "--dims",
        json.dumps(store.dims),
        "--classes",
        str(store.num_classes),
        "--batch",
        str(batch),
        "--passes",
        str(passes),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": f"not measured: exit {done.returncode}: {done.stderr[-2000:]}"}
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {**summarise(report["passes"]), "tensorflow": report["tensorflow"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="folder for the data, kept (and reused) after the run",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_frame_loader-"))
    try:
        files, store, timings = prepare(folder, args.videos)
        frames = int(store.meta.num_frames)
        print(
            f"{store.num_videos} videos, {frames} frames ({frames / store.num_videos:.0f} a "
            f"video), {sum(f.stat().st_size for f in files) / 1e6:.0f} MB of TFRecords"
        )
        results: dict[str, Any] = {}
        for workers in (0, 2):
            for bucket in (False, True):
                name = f"yt8mkit workers={workers} bucket={bucket}"
                results[name] = bench_loader(store, args.batch, workers, bucket, args.passes)
        results["tensorflow tf.data"] = bench_tensorflow(files, store, args.batch, args.passes)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"{'reader':<34} {'videos/s':>9} {'frames/s':>10} {'padding':>8}")
    for name, row in results.items():
        if "error" in row:
            print(f"{name:<34} {row['error']}")
            continue
        padding = row["passes"][0].get("padding")
        pad = f"{padding:.1%}" if padding is not None else "-"
        print(
            f"{name:<34} {row['videos_per_second']:>9.0f} "
            f"{row['videos_per_second'] * frames / store.num_videos:>10.0f} {pad:>8}"
        )
    report = {
        "setup": {
            "videos": store.num_videos,
            "frames": frames,
            "dims": store.dims,
            "classes": store.num_classes,
            "batch": args.batch,
            "passes": args.passes,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
            **timings,
            "note": "page cache warm (files just written); best pass reported",
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
