"""Training throughput of the frame-level models at their default sizes on this CPU.

One training step = forward, BCE loss, backward and an Adam step on a batch of 64 videos
of 300 frames (rgb 1024 + audio 128, 3862 classes: the real data's shapes). Every video is
full length, the worst case (real videos average about 230 frames). After ``--warmup``
untimed steps, ``--steps`` steps are timed; the table gives videos per second and the JSON
(``bench/results/frame_models.json``) the details.

    .venv/bin/python bench/bench_frame_models.py               # every frame-level model
    .venv/bin/python bench/bench_frame_models.py --models td_conv vlad_bow --steps 5
    .venv/bin/python bench/bench_frame_models.py --keep-denormal --out /tmp/denormal.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from yt8mkit.features.centroids import save_centroids
from yt8mkit.models import create_model, list_models, resolve_params

FEATURE_DIMS = {"rgb": 1024, "audio": 128}
NUM_CLASSES = 3862
LABELS_PER_VIDEO = 3
RESULTS = Path(__file__).resolve().parent / "results" / "frame_models.json"
# The paper's 10,000 global centroids (random here: the step costs the same).
NUM_CENTROIDS = 10_000


def model_params(name: str, scratch: Path) -> dict[str, Any]:
    """Parameters a model cannot default: the centroids file of centroids_resnet_like."""
    if name != "centroids_resnet_like":
        return {}
    path = scratch / "centroids.npy"
    if not path.is_file():
        rng = np.random.default_rng(0)
        points = rng.uniform(-2, 2, (NUM_CENTROIDS, sum(FEATURE_DIMS.values())))
        save_centroids(points.astype(np.float32), path, {"dims": FEATURE_DIMS})
    return {"centroids": str(path)}


def make_batch(batch: int, frames: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Random frames in the dequantized range and about three positive labels a video."""
    g = torch.Generator().manual_seed(seed)
    inputs = {
        name: torch.rand(batch, frames, dim, generator=g) * 4 - 2
        for name, dim in FEATURE_DIMS.items()
    }
    inputs["frame_mask"] = torch.ones(batch, frames, dtype=torch.bool)
    targets = torch.zeros(batch, NUM_CLASSES)
    labels = torch.randint(0, NUM_CLASSES, (batch, LABELS_PER_VIDEO), generator=g)
    targets.scatter_(1, labels, 1.0)
    return inputs, targets


def bench_model(
    name: str, params: dict[str, Any], inputs: dict[str, torch.Tensor], targets: torch.Tensor,
    warmup: int, steps: int,
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model(name, NUM_CLASSES, FEATURE_DIMS, params).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> float:
        loss = functional.binary_cross_entropy_with_logits(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    # Warm-up pays for one-off costs (allocator growth, Adam's state, kernel selection).
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    elapsed = time.perf_counter() - start
    batch = targets.shape[0]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_step": elapsed / steps,
        "videos_per_second": batch * steps / elapsed,
        "final_loss": loss,
        "params": resolve_params(name, params).model_dump(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="frame-level models to time (default: every registered one)",
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep-denormal",
        action="store_true",
        help="compute with denormal floats (the trainer flushes them, flush_denormal)",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.keep_denormal)
    names = args.models or list_models("frame")
    inputs, targets = make_batch(args.batch, args.frames, seed=0)
    results: dict[str, Any] = {}
    print(f"{'model':<32} {'params (M)':>10} {'s/step':>8} {'videos/s':>9}")
    scratch = Path(tempfile.mkdtemp(prefix="bench_frame_models_"))
    for name in names:
        try:
            row = bench_model(name, model_params(name, scratch), inputs, targets, args.warmup,
                              args.steps)
        except Exception as error:  # one model's failure must not lose the others' numbers
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            print(f"{name:<32} error: {results[name]['error']}")
            continue
        results[name] = row
        print(
            f"{name:<32} {row['parameters'] / 1e6:>10.1f} {row['seconds_per_step']:>8.2f} "
            f"{row['videos_per_second']:>9.1f}",
            flush=True,
        )

    shutil.rmtree(scratch)
    report = {
        "setup": {
            "batch": args.batch,
            "frames": args.frames,
            "feature_dims": FEATURE_DIMS,
            "num_classes": NUM_CLASSES,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "step": "forward + BCE + backward + Adam, all frames real",
            "flush_denormal": not args.keep_denormal,
            # Other processes on the machine slow every number down; this says how busy it was.
            "load_average_1_5_15_min": list(os.getloadavg()),
        },
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
