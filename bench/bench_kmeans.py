"""k-means time for the paper's global centroids: 10^6 frames of 1024 dims into 10,000
centroids with faiss on this CPU (``yt8mkit.features.centroids.kmeans``, the function
``yt8m centroids`` runs).

Frames are synthetic and "random-ish": ``--blobs`` random centres (N(0, 0.5) a dim,
clipped to the quantization range [-2, 2]) plus N(0, 0.25) noise, so that clusters exist
but do not match k. Lloyd iterations cost the same whatever the data (every frame against
every centroid), so ``--iterations`` is small and the time of the paper-like 20 is
extrapolated from the measured per-iteration time. Results:
``bench/results/kmeans.json``.

    .venv/bin/python bench/bench_kmeans.py                        # 10^6 x 1024 -> 10,000
    .venv/bin/python bench/bench_kmeans.py --frames 100000 --k 1000 --iterations 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from yt8mkit.features.centroids import kmeans
from yt8mkit.features.faiss_blas import faiss

RESULTS = Path(__file__).resolve().parent / "results" / "kmeans.json"


def synthetic_frames(frames: int, dim: int, blobs: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.clip(rng.normal(0.0, 0.5, size=(blobs, dim)), -2, 2).astype(np.float32)
    out = np.empty((frames, dim), np.float32)
    chunk = 50_000
    for start in range(0, frames, chunk):
        stop = min(start + chunk, frames)
        out[start:stop] = centres[rng.integers(blobs, size=stop - start)]
        out[start:stop] += rng.normal(0.0, 0.25, size=(stop - start, dim)).astype(np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--blobs", type=int, default=20_000)
    parser.add_argument("--init", default="random", choices=["random", "kmeans++", "auto"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    start = time.perf_counter()
    points = synthetic_frames(args.frames, args.dim, args.blobs, args.seed)
    generated = time.perf_counter() - start
    print(
        f"{args.frames} x {args.dim} frames ({points.nbytes / 1e9:.1f} GB) in {generated:.0f} s;"
        f" k-means into {args.k} centroids, {args.iterations} iterations, "
        f"faiss {faiss.__version__} with {faiss.omp_get_max_threads()} threads",
        flush=True,
    )

    marks: list[float] = []

    def progress(stage: str, done: int, total: int) -> None:
        marks.append(time.perf_counter())
        print(f"  iteration {done}/{total}: {marks[-1] - start:.1f} s", flush=True)

    start = time.perf_counter()
    centroids = kmeans(
        points,
        args.k,
        iterations=args.iterations,
        seed=args.seed,
        init=args.init,
        progress=progress,
    )
    total = time.perf_counter() - start
    per_iteration = np.diff([start, *marks]).tolist()
    setup_seconds = total - sum(per_iteration)
    mean_iteration = float(np.mean(per_iteration))
    objective = _objective(points[:100_000], centroids)

    rows: dict[str, Any] = {
        "seconds_total": total,
        "seconds_per_iteration": per_iteration,
        "seconds_init": setup_seconds,
        "extrapolated_seconds_20_iterations": setup_seconds + 20 * mean_iteration,
        "mean_squared_distance_first_100k": objective,
        "gflops_per_second": 2.0 * args.frames * args.k * args.dim / mean_iteration / 1e9,
    }
    print(
        f"{'frames':>9} {'dim':>5} {'k':>6} {'iters':>5} {'s/iter':>8} {'total s':>8} "
        f"{'20 iters (est.) s':>18} {'GFLOP/s':>8}"
    )
    estimate = rows["extrapolated_seconds_20_iterations"]
    print(
        f"{args.frames:>9} {args.dim:>5} {args.k:>6} {args.iterations:>5} "
        f"{mean_iteration:>8.1f} {total:>8.1f} {estimate:>18.0f} "
        f"{rows['gflops_per_second']:>8.1f}"
    )
    report = {
        "setup": {
            "frames": args.frames,
            "dim": args.dim,
            "k": args.k,
            "iterations": args.iterations,
            "blobs": args.blobs,
            "init": args.init,
            "seed": args.seed,
            "faiss": faiss.__version__,
            "threads": faiss.omp_get_max_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "load_average": os.getloadavg(),
            "generate_seconds": generated,
            "algorithm": "Lloyd, faiss.Clustering one step a call, IndexFlatL2 assignment",
        },
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def _objective(points: np.ndarray, centroids: np.ndarray) -> float:
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(centroids)
    distances, _ = index.search(points, 1)
    return float(distances.mean())


if __name__ == "__main__":
    main()
