"""GAP@20 speed: ``yt8mkit.metrics.gap_at_k`` against a plain implementation of the
official algorithm (a loop over videos with argpartition for the top 20, then one
global sort of all pooled pairs), on dense random float32 predictions with realistic
labels (about 3 a video, Zipf-like class frequencies). Both values must agree to
float64 rounding. It also times one read of the scores (a max over each row), the
floor of any exact GAP, to say how far from that floor each side is.

    .venv/bin/python bench/bench_gap.py [--videos 100000] [--classes 3862] [--repeats 5]

Writes bench/results/gap.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from yt8mkit.features.faiss_blas import faiss
from yt8mkit.metrics import Labels, gap_at_k
from yt8mkit.metrics.topk import default_workers

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SETTLE_S = 0.3


def make_labels(rng: np.random.Generator, n: int, c: int) -> Labels:
    """1 + Poisson(2) distinct labels a video, classes drawn with p ~ 1 / rank."""
    cdf = np.cumsum(1.0 / np.arange(1, c + 1))
    cdf /= cdf[-1]
    draws = np.sort(np.minimum(np.searchsorted(cdf, rng.random((n, 12))), c - 1), axis=1)
    fresh = np.ones(draws.shape, bool)
    fresh[:, 1:] = draws[:, 1:] != draws[:, :-1]
    wanted = np.minimum(1 + rng.poisson(2.0, n), fresh.sum(axis=1))
    # Keep the first `wanted` distinct classes of each row.
    keep = fresh & (np.cumsum(fresh, axis=1) <= wanted[:, None])
    counts = keep.sum(axis=1)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Labels(indptr, draws[keep].astype(np.int32), c)


def make_scores(rng: np.random.Generator, labels: Labels) -> np.ndarray:
    """Mostly small noise (0.1 u^4), most positives and two negatives a video lifted
    into [0.05, 1): a model that is often right, with confusions."""
    n, c = len(labels), labels.num_classes
    scores = np.empty((n, c), np.float32)
    for start in range(0, n, 8192):
        part = scores[start : start + 8192]
        rng.random(part.shape, np.float32, out=part)
        np.square(part, out=part)
        np.square(part, out=part)
        part *= np.float32(0.1)
    rows = np.concatenate([labels.row_ids(), np.repeat(np.arange(n), 2)])
    cols = np.concatenate([labels.indices, rng.integers(0, c, 2 * n)])
    lift = rng.random(len(rows)) < 0.8
    rows, cols = rows[lift], cols[lift]
    lifted = (0.05 + 0.95 * rng.random(len(rows))).astype(np.float32)
    scores[rows, cols] = np.maximum(scores[rows, cols], lifted)
    return scores


def _top_of(row: np.ndarray, k: int) -> np.ndarray:
    """Top k classes of one row by argpartition, as the starter; when the k-th score
    is tied with the (k+1)-th, fall back to the tie rule (lower class first)."""
    c = len(row)
    if k >= c:
        return np.arange(c)
    part = np.argpartition(row, c - k - 1)[c - k - 1 :]
    top = part[1:]
    if row[part[0]] == row[top].min():
        top = np.argsort(-row, kind="stable")[:k]
    return top


def official_plain(scores: np.ndarray, actuals: np.ndarray, k: int = 20) -> float:
    """The starter's algorithm written plainly with numpy: per-video argpartition,
    pooled pairs, one global sort. Same tie rules as yt8mkit (lower class first within
    a video, negatives first in the pooled ranking) so that the values are comparable."""
    n, c = scores.shape
    k = min(k, c)
    pooled = np.empty((n, k), scores.dtype)
    positive = np.empty((n, k), bool)
    for i in range(n):
        top = _top_of(scores[i], k)
        pooled[i] = scores[i, top]
        positive[i] = actuals[i, top]
    score, pos = pooled.ravel(), positive.ravel()
    order = np.lexsort((pos, -score))
    hits = pos[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    total = int(np.count_nonzero(actuals))
    return float(np.sum(precision[hits]) / total) if total else 0.0


def official_literal(scores: np.ndarray, actuals: np.ndarray, k: int = 20) -> float:
    """The same, with the starter's data structures: a Python list of (score, label)
    pairs per video, one Python sort, a Python loop for the precision sum."""
    n, c = scores.shape
    k = min(k, c)
    pairs: list[tuple[float, bool]] = []
    for i in range(n):
        top = _top_of(scores[i], k)
        pairs.extend(zip(scores[i, top].tolist(), actuals[i, top].tolist()))
    pairs.sort(key=lambda pair: (-pair[0], pair[1]))
    found, total_precision = 0, 0.0
    for rank, (_, positive) in enumerate(pairs, start=1):
        if positive:
            found += 1
            total_precision += found / rank
    total = int(np.count_nonzero(actuals))
    return total_precision / total if total else 0.0


def top_k_torch(scores: torch.Tensor, k: int) -> float:
    values, _ = torch.topk(scores, k, dim=1)
    return float(values[0, 0])


def top_k_faiss(scores: np.ndarray, k: int) -> float:
    """faiss's k-max heaps over every row (OpenMP threads), then sorted."""
    n, c = scores.shape
    values = np.empty((n, k), np.float32)
    ids = np.empty((n, k), np.int64)
    heaps = faiss.float_minheap_array_t()
    heaps.k, heaps.nh = k, n
    heaps.val, heaps.ids = faiss.swig_ptr(values), faiss.swig_ptr(ids)
    heaps.heapify()
    heaps.addn(c, faiss.swig_ptr(scores), 0, 0, n)
    heaps.reorder()
    return float(values[0, 0])


def timed(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, dict[str, object]]:
    """Wall and CPU times of ``repeats`` runs of each function (CPU time is less
    sensitive to other work on a shared machine) and the value. The functions take
    turns, a round of each per repeat, so that a busy spell on the machine falls on
    every side alike rather than on whichever ran then."""
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    value: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            # OpenMP threads (torch's, faiss's) spin for a while after their work; a
            # pause keeps them off the cores of whatever runs next.
            time.sleep(SETTLE_S)
            began, began_cpu = time.perf_counter(), time.process_time()
            value[name] = fn()
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
    return {
        name: {
            "best_s": min(wall[name]),
            "times_s": wall[name],
            "best_cpu_s": min(cpu[name]),
            "gap": value[name],
        }
        for name in fns
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=3862)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-literal", action="store_true", help="skip the (slow) pure-Python rendition"
    )
    parser.add_argument("--out", default=str(RESULTS / "gap.json"))
    args = parser.parse_args()
    console = Console(width=130)

    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    labels = make_labels(rng, args.videos, args.classes)
    scores = make_scores(rng, labels)
    # The official code takes dense 0/1 actuals: built here, outside its timing.
    actuals = labels.dense(dtype=np.bool_)
    console.print(
        f"data: {args.videos} x {args.classes} float32, {len(labels.indices)} labels "
        f"({len(labels.indices) / args.videos:.2f} a video), built in "
        f"{time.perf_counter() - began:.1f} s"
    )

    load_before = os.getloadavg()
    # The floor of any exact GAP: every score must be read once. One multithreaded
    # reduction over the whole array (torch, the same thread count) times that pass.
    torch.set_num_threads(default_workers())
    faiss.omp_set_num_threads(default_workers())
    scores_tensor = torch.from_numpy(scores)
    timings = timed(
        {
            "floor": lambda: float(scores_tensor.amax(dim=1)[0]),
            "gap_at_k": lambda: gap_at_k(scores, labels, args.k),
            "gap_at_k, numpy path": lambda: gap_at_k(scores, labels, args.k, backend="numpy"),
            "official_plain": lambda: official_plain(scores, actuals, args.k),
            # The libraries' own top-k, selection only (no GAP): why the metric has a
            # kernel of its own.
            "torch.topk": lambda: top_k_torch(scores_tensor, args.k),
            "faiss heaps (float_minheap_array_t.addn)": lambda: top_k_faiss(scores, args.k),
        },
        args.repeats,
    )
    floor = timings.pop("floor")
    selection = {
        name: timings.pop(name)
        for name in ("torch.topk", "faiss heaps (float_minheap_array_t.addn)")
    }
    runs = timings
    if not args.no_literal:
        runs.update(
            timed({"official_literal": lambda: official_literal(scores, actuals, args.k)}, 1)
        )
    load_after = os.getloadavg()
    fast = runs["gap_at_k"]
    diffs = {name: abs(run["gap"] - fast["gap"]) for name, run in runs.items()}
    speedups = {name: run["best_s"] / fast["best_s"] for name, run in runs.items()}
    cpu_speedups = {name: run["best_cpu_s"] / fast["best_cpu_s"] for name, run in runs.items()}

    table = Table(title=f"GAP@{args.k}, {args.videos} videos x {args.classes} classes")
    for column in ("implementation", "best wall (s)", "all wall (s)", "best CPU (s)", "speed-up"):
        table.add_column(column, justify="right" if column != "implementation" else "left")
    table.add_column("GAP")
    for name, run in runs.items():
        table.add_row(
            name,
            f"{run['best_s']:.3f}",
            " ".join(f"{t:.3f}" for t in run["times_s"]),
            f"{run['best_cpu_s']:.3f}",
            f"{speedups[name]:.1f}x",
            f"{run['gap']:.12f}",
        )
    console.print(table)
    for name, run in selection.items():
        console.print(
            f"top-{args.k} selection alone with {name}: {run['best_s']:.3f} s "
            f"(gap_at_k whole: {fast['best_s']:.3f} s)"
        )
    goal_s = runs["official_plain"]["best_s"] / 20
    console.print(
        f"one read of the scores: {floor['best_s']:.3f} s; a 20x speed-up means "
        f"{goal_s:.3f} s ({goal_s / floor['best_s']:.2f} passes); gap_at_k takes "
        f"{fast['best_s'] / floor['best_s']:.1f} passes"
    )
    console.print(
        f"max |difference|: {max(diffs.values()):.2e}   gap_at_k threads: {default_workers()}   "
        f"load average: {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs"
    )

    result = {
        "benchmark": "gap_at_k",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            # Other work on the machine slows every side; the 1-minute load average
            # before and after the timings says how quiet it was.
            "loadavg_1min_before_after": [load_before[0], load_after[0]],
            "gap_at_k_threads": default_workers(),
        },
        "data": {
            "videos": args.videos,
            "classes": args.classes,
            "k": args.k,
            "labels": len(labels.indices),
            "dtype": "float32",
            "seed": args.seed,
        },
        **runs,
        "selection_only": {
            name: {k: v for k, v in run.items() if k != "gap"} for name, run in selection.items()
        },
        "speedup": speedups["official_plain"],
        "speedup_cpu": cpu_speedups["official_plain"],
        "speedup_vs_literal": speedups.get("official_literal"),
        "abs_difference": diffs,
        "one_read_pass_s": floor["best_s"],
        "goal_20x_s": goal_s,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    if max(diffs.values()) >= 1e-9:
        raise SystemExit(f"values differ by {max(diffs.values()):.3e}")


if __name__ == "__main__":
    main()
