"""The CUDA path of the trainer against its CPU path: the real-data resnet_like recipe
(configs/real/resnet_like.yaml) trained on one fold for a few epochs on the CPU, on the
GPU in float32 and on the GPU with automatic mixed precision (float16 autocast + loss
scaling); the same seed and data for all three. Reports training videos/s (each epoch's
validation pass included, as the trainer runs it) and GAP@20 on the held-out fold and on
the held-out videos, so that a GPU run is seen to reach the CPU run's quality.

    python bench/bench_cuda.py --train DIR_OR_GLOB ... --test DIR_OR_GLOB ...
        [--epochs 4] [--variants cpu,cuda,cuda_amp] [--out runs/bench_cuda] [--results cuda]

Without a GPU, the cuda variants are refused with a clear error (pass --variants cpu).
Writes bench/results/{results}.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from results_table import write_results

from yt8mkit.data.folds import write_folds
from yt8mkit.data.ingest import open_or_ingest
from yt8mkit.rundir import prediction_gap
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import predict_test, run_fold

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"cpu": ("cpu", False), "cuda": ("cuda", False), "cuda_amp": ("cuda", True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", nargs="+", required=True)
    parser.add_argument("--test", nargs="+", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--variants", default="cpu,cuda,cuda_amp")
    parser.add_argument("--config", default=str(ROOT / "configs" / "real" / "resnet_like.yaml"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_cuda"))
    parser.add_argument("--results", default="cuda")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    if any(VARIANTS[n][0] == "cuda" for n in names) and not torch.cuda.is_available():
        parser.error("no CUDA device here: pass --variants cpu")

    out = Path(args.out)
    began = time.perf_counter()
    store = open_or_ingest(args.train, out, "store", 3862)
    test_store = open_or_ingest(args.test, out, "test_store", 3862)
    ingest_s = time.perf_counter() - began
    folds = write_folds(store, num_folds=5, seed=0)
    train_videos = int((folds != 0).sum())
    base = TrainConfig.from_yaml(args.config).model_dump()

    report: dict = {
        "train_videos": train_videos, "fold0_videos": int((folds == 0).sum()),
        "test_videos": test_store.num_videos, "epochs": args.epochs,
        "ingest_seconds": ingest_s, "config": args.config,
        "machine": {"machine": platform.machine(), "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "variants": {},
    }
    rows = []
    for name in names:
        device, amp = VARIANTS[name]
        config = TrainConfig.model_validate({**base, "name": name, "epochs": args.epochs,
                                             "patience": args.epochs, "device": device,
                                             "amp": amp})
        run_dir = out / name
        result = run_fold(config, store, folds, 0, run_dir)
        test = predict_test(config, store, test_store, run_dir, [0])
        seconds = result["seconds"]
        entry = {"device": device, "amp": amp, "seconds": seconds,
                 "epochs_run": result["epochs_run"],
                 "train_videos_per_s": train_videos * result["epochs_run"] / seconds,
                 "fold0_gap": result["best_gap"], "best_epoch": result["best_epoch"],
                 "test_gap": prediction_gap(test, test_store),
                 "peak_gpu_mb": (torch.cuda.max_memory_allocated() / 2**20
                                 if device == "cuda" else None)}
        report["variants"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    cpu = report["variants"].get("cpu")
    for name, e in report["variants"].items():
        speed = f"{e['train_videos_per_s'] / cpu['train_videos_per_s']:.1f}x" if cpu else ""
        gap_diff = f"{e['test_gap'] - cpu['test_gap']:+.4f}" if cpu else ""
        rows.append([name, f"{e['seconds']:.1f}", f"{e['train_videos_per_s']:,.0f}", speed,
                     f"{e['fold0_gap']:.4f}", f"{e['test_gap']:.4f}", gap_diff])
    write_results(args.results, report,
                  ["variant", "train s", "videos/s", "vs cpu", "fold-0 GAP@20",
                   "held-out GAP@20", "held-out vs cpu"], rows,
                  [f"\n{train_videos:,} training videos, {args.epochs} epochs, "
                   f"{test_store.num_videos:,} held-out; {report['machine']}"])


if __name__ == "__main__":
    main()
