"""The trained final model's size, speed and accuracy as exported: one fold's or the mean
of every fold's, fp32 or int8, scored with ONNX Runtime on the selection split (videos no
model of either level trained on) and on the held-out videos.

    .venv/bin/python bench/bench_final_export.py --distill RUN/distill --store RUN/store
        --test-store RUN/test_store --config configs/real/pipeline.yaml
        [--labels soft] [--out runs/bench_final_export] [--results final_export]

Speed: videos a second through ONNX Runtime at batch 256 on 2 threads, the median of 5
passes over the first 4,096 videos of the store.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime
from results_table import write_results

from yt8mkit.data.folds import selection_rows
from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError
from yt8mkit.export.final import ExportConfig, export_final_model
from yt8mkit.export.predictor import OnnxPredictor
from yt8mkit.metrics import GapAccumulator
from yt8mkit.pipeline.config import PipelineConfig

BATCH = 256


def held_out_gap(model: Path, store: Store, rows: np.ndarray | None = None) -> float:
    accumulator = GapAccumulator(k=20)
    predictor = OnnxPredictor(model, threads=2)
    rows = np.arange(store.num_videos) if rows is None else rows
    for start in range(0, len(rows), 1024):
        chunk = rows[start : start + 1024]
        inputs = {n: np.asarray(store.video_features(n)[chunk], np.float32)
                  for n in predictor.input_names}
        accumulator.add_dense(predictor.predict(inputs), store.labels_dense(chunk))
    return accumulator.gap()


def speed(model: Path, store: Store) -> float:
    predictor = OnnxPredictor(model, threads=2)
    rows = np.arange(min(4096, store.num_videos))
    inputs = {n: np.asarray(store.video_features(n)[rows], np.float32)
              for n in predictor.input_names}
    passes = []
    for _ in range(5):
        began = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            predictor.predict({n: v[start : start + BATCH] for n, v in inputs.items()})
        passes.append(time.perf_counter() - began)
    return len(rows) / statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distill", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--test-store", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--labels", default="soft")
    parser.add_argument("--out", default="runs/bench_final_export")
    parser.add_argument("--results", default="final_export")
    args = parser.parse_args()
    store, test_store = Store(args.store), Store(args.test_store)
    config = PipelineConfig.from_yaml(args.config)
    assert config.distill is not None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    selected = selection_rows(store.folds())
    rows, table = [], []
    for fold in ("all", 0):
        for int8 in (False, True):
            name = f"fold_{fold}_{'int8' if int8 else 'fp32'}"
            path = out / f"{name}.onnx"
            export = ExportConfig(fold=fold, labels=args.labels, int8=int8)
            row: dict = {"name": name, "fold": fold, "int8": int8}
            try:
                summary = export_final_model(store, Path(args.distill), config.distill, path,
                                             export)
            except Yt8mError as err:
                row["refused"] = str(err)
                rows.append(row)
                table.append([name, "refused", "", "", "", str(err)[:120]])
                continue
            row.update(size_bytes=summary["size_bytes"],
                       selection_gap=held_out_gap(path, store, selected) if len(selected)
                       else None,
                       held_out_gap=held_out_gap(path, test_store),
                       videos_per_second=speed(path, store))
            rows.append(row)
            table.append([name, f"{row['size_bytes'] / 1e6:.1f} MB",
                          "" if row["selection_gap"] is None else f"{row['selection_gap']:.4f}",
                          f"{row['held_out_gap']:.4f}", f"{row['videos_per_second']:,.0f}", ""])
    report = {"distill": args.distill, "labels": args.labels, "rows": rows,
              "machine": {"onnxruntime": onnxruntime.__version__,
                          "machine": platform.machine()}}
    write_results(args.results, report,
                  ["export", "size", "selection GAP@20", "held-out GAP@20",
                   "videos/s (batch 256, 2 threads)", "note"], table)


if __name__ == "__main__":
    main()
