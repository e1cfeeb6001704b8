"""Video-level models on the real dev data: 5-fold out-of-fold GAP@20 on
../shared/data/yt8m-2018-video/dev/ and GAP@20 on the held-out labelled smoke shards
(videos of the same release that dev/ does not hold), each model's test prediction being
the mean of its 5 fold models.

    .venv/bin/python bench/bench_video_models.py [--zoo configs/real/zoo.yaml] [--models a,b]
        [--from-pipeline runs/real_pipeline]

Writes bench/results/video_models.json and bench/results/video_models.md. The run
directory (default runs/bench_video) is resumable: rerunning skips finished folds.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from results_table import write_results

from yt8mkit.data.folds import folds_info, write_folds
from yt8mkit.data.ingest import open_or_ingest
from yt8mkit.data.predictions import Predictions
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.rundir import prediction_gap
from yt8mkit.zoo.config import ZooConfig
from yt8mkit.zoo.runner import run_zoo

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "yt8m-2018-video"
HELD_OUT = [str(p) for p in sorted((DATA / "smoke").glob("validate*.tfrecord"))]
PIPELINE = ROOT / "configs" / "real" / "pipeline.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default=str(ROOT / "configs" / "real" / "zoo.yaml"))
    parser.add_argument("--models", default="", help="comma-separated subset of the zoo")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_video"))
    parser.add_argument("--from-pipeline", default=None, help=(
        "a finished run of configs/real/pipeline.yaml: its zoo's results, nothing is "
        "retrained; writes results/video_models_pipeline.*"))
    args = parser.parse_args()

    out = Path(args.out)
    held_out_name, result_name = "held_out", "video_models"
    zoo = ZooConfig.from_yaml(args.zoo)
    if args.from_pipeline:
        out, held_out_name = Path(args.from_pipeline), "test_store"
        result_name = "video_models_pipeline"
        zoo = PipelineConfig.from_yaml(PIPELINE).zoo
    configs = zoo.train_configs()
    if args.models:
        configs = {k: v for k, v in configs.items() if k in args.models.split(",")}
    store = open_or_ingest([str(DATA / "dev")], out, "store", num_classes=3862)
    held_out = open_or_ingest(HELD_OUT, out, held_out_name, num_classes=3862)
    if folds_info(store) is None:
        write_folds(store, 5, 0)
    began = time.perf_counter()
    result = run_zoo(
        configs,
        str(store.path),
        out / "zoo",
        str(held_out.path),
        report=lambda m: print(m, flush=True),
    )
    rows = []
    for name in configs:
        metrics = result.metrics.get(name)
        if metrics is None:
            rows.append({"model": name, "failed": True})
            continue
        test = Predictions(out / "zoo" / name / "test")
        rows.append(
            {
                "model": name,
                "oof_gap": metrics["oof_gap"],
                "oof_bce": metrics["oof_bce"],
                "fold_gaps": [f["best_gap"] for f in metrics["folds"]],
                "best_epochs": [f["best_epoch"] for f in metrics["folds"]],
                "held_out_gap": prediction_gap(test, held_out),
                "train_seconds": float(np.sum([f["seconds"] for f in metrics["folds"]])),
            }
        )
    rows.sort(key=lambda r: -r.get("oof_gap", -1))
    report = {
        "dev_videos": store.num_videos,
        "held_out_videos": held_out.num_videos,
        "machine": {
            "cpus": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "seconds": time.perf_counter() - began,
        "models": rows,
    }
    table = [[r["model"], "failed", "", "", ""] if r.get("failed") else
             [r["model"], f"{r['oof_gap']:.4f}", f"{r['oof_bce']:.3e}",
              f"{r['held_out_gap']:.4f}", f"{r['train_seconds']:.0f}"]
             for r in rows]
    write_results(result_name, report,
                  ["model", "OOF GAP@20", "OOF BCE", "held-out GAP@20", "train s"], table)

if __name__ == "__main__":
    main()
