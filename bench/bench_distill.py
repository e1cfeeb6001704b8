"""The distillation stage on the real dev data, from a finished pipeline run's ensemble:
the students, the final model over their frozen features (5 folds), and the exported
ONNX file scored on the held-out videos, so that a distillation recipe can be measured
without rerunning the first level and the ensemble.

    .venv/bin/python bench/bench_distill.py [--run runs/real_pipeline]
        [--config configs/real/pipeline.yaml] [--out runs/bench_distill] [--kinds hard]
        [--workers 2] [--results distill]

Reads the run's store, held-out store (``test_store``, the labelled smoke/ videos) and
ensemble out-of-fold scores (the soft labels); trains the ``distill`` section of the
config into ``--out`` (resumable: finished students and folds are skipped), exports the
``export`` section's final model (``fold: all`` is the mean of the 5 fold models in one
file; with --kinds naming only the other labels, that kind's final model), predicts the
held-out videos with ONNX Runtime and writes
bench/results/distill.{json,md}.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from results_table import write_results

from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.distill.run import run_distill
from yt8mkit.export.final import export_final_model
from yt8mkit.export.predictor import predict_store
from yt8mkit.metrics import GapAccumulator
from yt8mkit.pipeline.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(ROOT / "runs" / "real_pipeline"))
    parser.add_argument("--config", default=str(ROOT / "configs" / "real" / "pipeline.yaml"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_distill"))
    parser.add_argument("--kinds", default="",
                        help="soft,hard (default: the config's) or one of them")
    parser.add_argument("--results", default="distill",
                        help="bench/results/NAME.{json,md} to write")
    parser.add_argument("--workers", type=int, default=1,
                        help="folds trained side by side in this many processes")
    args = parser.parse_args()

    run, out = Path(args.run), Path(args.out)
    config = PipelineConfig.from_yaml(args.config)
    if config.distill is None or config.export is None:
        raise SystemExit(f"{args.config}: needs distill and export sections")
    store, held_out = Store(run / "store"), Store(run / "test_store")
    ensemble = Predictions(run / "ensemble" / "oof")
    began = time.perf_counter()
    kinds = args.kinds.split(",") if args.kinds else None
    metrics = run_distill(store, ensemble, out, config.distill, held_out,
                          lambda message: print(message, flush=True), kinds, args.workers)
    distill_seconds = time.perf_counter() - began
    if kinds and config.export.labels not in kinds:
        config.export = config.export.model_copy(update={"labels": kinds[0]})

    onnx = out / "final_model.onnx"
    export = export_final_model(store, out, config.distill, onnx, config.export)
    accumulator = GapAccumulator(k=20)
    for rows, indices, scores in predict_store(onnx, held_out):
        accumulator.add_top_k(indices, scores, held_out.labels_dense(rows))
    onnx_gap = accumulator.gap()

    rows = [{"model": name, "oof_gap": m["oof_gap"], "selection_gap": m.get("selection_gap"),
             "selected_on": m.get("selected_on"), "held_out_gap": m.get("test_gap")}
            for name, m in metrics.items()]
    report = {
        "run": str(run), "config": str(args.config),
        "distill": config.distill.model_dump(mode="json"),
        "export": config.export.model_dump(mode="json"),
        "videos": store.num_videos, "held_out_videos": held_out.num_videos,
        "distill_seconds_this_call": distill_seconds,
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__,
                    "machine": platform.machine()},
        "rows": rows,
        "onnx": {"labels": config.export.labels, "fold": config.export.fold,
                 "size_bytes": export["size_bytes"], "held_out_gap": onnx_gap},
    }
    table = [[row["model"], f"{row['oof_gap']:.4f}",
              "" if row["selection_gap"] is None else f"{row['selection_gap']:.4f}",
              "" if row["held_out_gap"] is None else f"{row['held_out_gap']:.4f}"]
             for row in rows]
    table.append([f"exported final model ({config.export.labels} labels, fold "
                  f"{config.export.fold}, ONNX, {export['size_bytes'] / 1e6:.1f} MB)", "", "",
                  f"{onnx_gap:.4f}"])
    write_results(args.results, report,
                  ["model", "OOF GAP@20 (leaky for soft labels)", "selection GAP@20",
                   "held-out GAP@20"], table)

if __name__ == "__main__":
    main()
