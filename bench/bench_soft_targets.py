"""Soft-target options measured leak-free on the real dev data: one model config trained
on the hard labels and on the ensemble's soft labels under several options (blend with
the hard labels, temperature), every epoch chosen on the selection split (videos no
teacher trained on), and scored there and on the held-out videos.

    .venv/bin/python bench/bench_soft_targets.py --run RUN --model configs/real/resnet_like.yaml
        [--variants hard,soft:0:1,soft:0.5:1,soft:0.5:0.5] [--folds 0] [--workers 2]
        [--out runs/bench_soft_targets] [--results soft_targets]

RUN is a pipeline run whose folds have a selection split and whose stack is done
(``RUN/store``, ``RUN/test_store``, ``RUN/ensemble/oof``). A variant is ``hard`` or
``soft:BLEND:TEMPERATURE``. With ``--folds 0`` (screening) each variant trains fold 0 only,
and its score is the selection split's GAP@20 at the chosen epoch (the maximum over
epochs, so a little optimistic, equally for every variant); with ``--folds all`` every
fold, and the scores are those of the mean of the 5 fold models on the selection split
and on the held-out videos; each fold model alone is also scored on the held-out videos.
Resumable: finished folds are skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from results_table import write_results

from yt8mkit.data.folds import fold_ids
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.distill.run import fold_job, soft_labels_for
from yt8mkit.metrics import GapAccumulator
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.pool import Job, run_jobs
from yt8mkit.train.run import check_run_config, run_model, soft_targets
from yt8mkit.train.trainer import load_best, predict_batches, resolve_device

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(text: str) -> dict:
    if text == "hard":
        return {"name": "hard", "labels": "hard"}
    kind, blend, temperature = text.split(":")
    if kind != "soft":
        raise SystemExit(f"variant {text!r}: hard or soft:BLEND:TEMPERATURE")
    return {"name": f"soft_b{blend}_t{temperature}", "labels": "soft",
            "blend": float(blend), "temperature": float(temperature)}


def fold_held_out_gap(config: TrainConfig, store: Store, held_out: Store, fold_dir: Path
                      ) -> float:
    """GAP@20 of one fold's model alone on the held-out videos."""
    device = resolve_device(config)
    model = load_best(config, store, fold_dir, device)
    accumulator = GapAccumulator(k=20)
    for rows, probs in predict_batches(model, config, held_out, np.arange(held_out.num_videos),
                                       device):
        accumulator.add_dense(probs, held_out.labels_dense(rows))
    return accumulator.gap()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--model", default=str(ROOT / "configs" / "real" / "resnet_like.yaml"))
    parser.add_argument("--variants", default="hard,soft:0:1,soft:0.5:1,soft:0.5:0.5")
    parser.add_argument("--folds", default="0", help="comma-separated folds, or all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_soft_targets"))
    parser.add_argument("--results", default="soft_targets")
    args = parser.parse_args()

    run, out = Path(args.run), Path(args.out)
    store, held_out = Store(run / "store"), Store(run / "test_store")
    ensemble = Predictions(run / "ensemble" / "oof")
    all_folds = fold_ids(store.folds())
    folds = all_folds if args.folds == "all" else [int(f) for f in args.folds.split(",")]
    base = TrainConfig.from_yaml(args.model)
    variants = [parse_variant(v) for v in args.variants.split(",")]
    jobs, configs, soft_dirs = [], {}, {}
    for variant in variants:
        vdir = out / variant["name"]
        vdir.mkdir(parents=True, exist_ok=True)
        soft_dir = None
        if variant["labels"] == "soft":
            soft_labels_for(store, ensemble, vdir, variant["blend"], variant["temperature"])
            soft_dir = str(vdir / "soft_labels")
        config = base.model_copy(update={"name": f"{base.name}_{variant['name']}",
                                         "select_on": "selection"})
        configs[variant["name"]], soft_dirs[variant["name"]] = config, soft_dir
        check_run_config(vdir / "model", config)  # before the workers race to write it
        jobs += [Job((variant["name"], f), fold_job,
                     (config, str(store.path), f, str(vdir / "model"), soft_dir, None))
                 for f in folds if not (vdir / "model" / f"fold{f}" / "done.json").is_file()]
    began = time.perf_counter()
    result = run_jobs(jobs, args.workers, retries=0,
                      report=lambda message: print(message, flush=True))
    if result.failed:
        raise SystemExit(f"failed: {result.failed}")
    seconds = time.perf_counter() - began

    rows, table = [], []
    for variant in variants:
        vdir = out / variant["name"]
        done = [json.loads((vdir / "model" / f"fold{f}" / "done.json").read_text())
                for f in folds]
        row = {**variant, "folds": folds,
               "selection_gap_at_chosen_epoch": [d["best_gap"] for d in done],
               "best_epochs": [d["best_epoch"] for d in done]}
        row["held_out_gap_per_fold"] = [
            fold_held_out_gap(configs[variant["name"]], store, held_out,
                              vdir / "model" / f"fold{f}") for f in folds]
        if folds == all_folds:
            soft_dir = soft_dirs[variant["name"]]
            targets = soft_targets(soft_dir, store) if soft_dir is not None else None
            metrics = run_model(configs[variant["name"]], store, vdir / "model", held_out,
                                targets=targets)
            row["selection_gap"] = metrics["selection_gap"]
            row["held_out_gap"] = metrics["test_gap"]
        rows.append(row)
        table.append([variant["name"],
                      " ".join(f"{g:.4f}" for g in row["selection_gap_at_chosen_epoch"]),
                      " ".join(f"{g:.4f}" for g in row["held_out_gap_per_fold"]),
                      f"{row['selection_gap']:.4f}" if "selection_gap" in row else "",
                      f"{row['held_out_gap']:.4f}" if "held_out_gap" in row else ""])
    report = {"run": str(run), "model": str(args.model), "folds": folds,
              "selection_videos": int((store.folds() < 0).sum()),
              "held_out_videos": held_out.num_videos, "train_seconds_this_call": seconds,
              "machine": {"torch": torch.__version__, "machine": platform.machine()},
              "rows": rows}
    write_results(args.results, report,
                  ["variant", "selection GAP@20 at chosen epoch (per fold)",
                   "held-out GAP@20 (per fold)", "selection GAP@20 (mean of folds)",
                   "held-out GAP@20 (mean of folds)"], table)


if __name__ == "__main__":
    main()
