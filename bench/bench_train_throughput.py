"""Training throughput of video-level `resnet_like` (inner 2048) on this CPU, as a share
of the machine's own float32 matrix-multiply peak measured in the same run, and the peak
memory of training on the dev store.

    .venv/bin/python bench/bench_train_throughput.py [--steps 40] [--store STORE]

A step is forward + BCE + backward + the trainer's AdamW on a batch of 256 videos read
from the store (memory-mapped, float16 -> float32), mixup off. Work per video counts the
Linear layers (which hold all but a sliver of the arithmetic): 2 FLOPs a multiply-add
forward, twice that backward (input and weight gradients). The peak is the best of
square float32 matmuls (torch.mm, the same BLAS and threads). Writes
bench/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from yt8mkit.data.ingest import open_or_ingest
from yt8mkit.data.loader import epoch_order, video_batches
from yt8mkit.models import create_model
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.trainer import _optimizer

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "yt8m-2018-video" / "dev"
RESULTS = ROOT / "bench" / "results"


def matmul_peak(sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 5) -> dict:
    best: dict[str, float] = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t)
        best[str(n)] = 2 * n**3 / min(times) / 1e9
    return {"gflops_by_size": best, "peak_gflops": max(best.values())}


def linear_flops_per_video(model: nn.Module) -> int:
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    return 6 * macs  # forward 2, backward 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--inner", type=int, default=2048)
    parser.add_argument("--store", default=None, help="a store (default: dev/ ingested)")
    args = parser.parse_args()

    torch.manual_seed(0)
    store = (open_or_ingest([args.store], ROOT / "runs", "bench_store") if args.store
             else open_or_ingest([str(DEV)], ROOT / "runs" / "bench_train", "store", 3862))
    peak_before = matmul_peak()
    model = create_model("resnet_like", store.num_classes, store.dims,
                         {"inner_size": args.inner}).train()
    # The trainer's own optimizer (fused AdamW), so the figure is the trainer's.
    optimizer = _optimizer(TrainConfig.model_validate(
        {"model": {"name": "resnet_like"}, "optim": {"name": "adamw", "weight_decay": 0.01}}),
        model)
    rows = epoch_order(np.arange(store.num_videos), 0, 0)
    batches = video_batches(store, rows, args.batch, drop_last=True)
    step_times, load_times = [], []
    warmup = 3
    for i, batch in enumerate(batches):
        if i >= warmup + args.steps:
            break
        t = time.perf_counter()
        loss = functional.binary_cross_entropy_with_logits(model(batch.inputs), batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            step_times.append(time.perf_counter() - t)
    # Reading batches from the store, timed alone, for the share the loader takes.
    t = time.perf_counter()
    n_read = 0
    for _ in video_batches(store, rows, args.batch, drop_last=True):
        n_read += 1
        if n_read >= args.steps:
            break
    load_times.append((time.perf_counter() - t) / n_read)
    peak_after = matmul_peak()

    step = float(np.median(step_times))
    flops = linear_flops_per_video(model)
    videos_per_s = args.batch / step
    with_loading = args.batch / (step + load_times[0])
    peak = max(peak_before["peak_gflops"], peak_after["peak_gflops"])
    achieved = flops * videos_per_s / 1e9
    report = {
        "model": {"name": "resnet_like", "inner_size": args.inner,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "linear_gflop_per_video_step": flops / 1e9},
        "batch": args.batch, "steps": args.steps, "threads": torch.get_num_threads(),
        "store": str(store.path), "videos": store.num_videos,
        "train_videos_per_s_compute": videos_per_s,
        "train_videos_per_s_with_loading": with_loading,
        "loader_seconds_per_batch": load_times[0],
        "achieved_gflops": achieved,
        "matmul_peak": {"before": peak_before, "after": peak_after, "peak_gflops": peak},
        "fraction_of_peak": achieved / peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {"machine": platform.machine(), "torch": torch.__version__,
                    "load_average": list(__import__("os").getloadavg())},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(report, indent=2))
    print(f"| resnet_like inner {args.inner} | videos/s | GFLOP/s | matmul peak | share "
          "| peak RSS |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| training step (batch {args.batch}) | {videos_per_s:,.0f} "
          f"({with_loading:,.0f} with loading) | {achieved:.1f} | {peak:.1f} | "
          f"{achieved / peak:.0%} | {report['peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
