"""Ingest memory: peak RSS of ``yt8m ingest`` (one process; its workers are threads) for
the first 10 files of ``yt8m-2018-video/dev`` and for all 100. Ingest streams, so the
peak must not grow with the input.

Each ingest runs in a fresh Python process, so that nothing from an earlier one stays
in its heap. Two measures: the RSS of that process and any children, sampled every
2 ms from /proc, and the process's exact peak from ``getrusage``.

    .venv/bin/python bench/bench_ingest_memory.py [--data DIR] [--workers 2]

Writes bench/results/ingest_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proc_tree import tree_rss
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEV = ROOT.parent / "shared" / "data" / "yt8m-2018-video" / "dev"


def _child(files: list[str], workers: int) -> None:
    """Run in the measured process: one ingest, then its peak."""
    from yt8mkit.data.ingest import IngestConfig, ingest

    with tempfile.TemporaryDirectory(prefix="bench_ingest_memory_") as folder:
        meta = ingest(files, Path(folder) / "store", IngestConfig(workers=workers))
    kib = 1024  # ru_maxrss is in KiB on Linux
    print(
        json.dumps(
            {
                "videos": meta.num_videos,
                "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 1e6,
            }
        )
    )


def measure(files: list[str], workers: int) -> dict[str, float]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", "--workers", str(workers), *files],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = 0
    samples = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        samples += 1
        time.sleep(0.002)
    out, _ = process.communicate()
    if process.returncode:
        raise RuntimeError(f"ingest exited with code {process.returncode}")
    return {**json.loads(out), "tree_peak_mb": peak / 1e6, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.files, args.workers)
        return 0
    console = Console()
    files = sorted(str(p) for p in args.data.glob("*.tfrecord"))
    if len(files) < 100:
        console.print(f"need 100 .tfrecord files in {args.data}, found {len(files)}")
        return 2
    sizes = {"10 files": files[:10], "100 files": files}
    for subset in sizes.values():  # warm the page cache, so both runs read from memory
        for path in subset:
            Path(path).read_bytes()
    rows = {name: measure(subset, args.workers) for name, subset in sizes.items()}
    for name, subset in sizes.items():
        rows[name]["files"] = len(subset)
        rows[name]["input_mb"] = sum(os.path.getsize(p) for p in subset) / 1e6

    table = Table(title=f"ingest peak memory, {args.workers} decoding threads")
    columns = ("input", "videos", "input MB", "sampled RSS MB", "process peak MB")
    for column in columns:
        table.add_column(column, justify="left" if column == "input" else "right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['videos']:,}",
            f"{row['input_mb']:.0f}",
            f"{row['tree_peak_mb']:.0f}",
            f"{row['process_peak_mb']:.0f}",
        )
    console.print(table)
    small, large = rows["10 files"], rows["100 files"]
    growth = large["tree_peak_mb"] / small["tree_peak_mb"]
    console.print(
        f"10x the input: sampled peak RSS x{growth:.2f}, "
        f"process peak x{large['process_peak_mb'] / small['process_peak_mb']:.2f}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "bench": "ingest_memory",
        "data": str(args.data),
        "workers": args.workers,
        "runs": rows,
        "tree_peak_growth_10x_input": growth,
    }
    (RESULTS / "ingest_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {RESULTS / 'ingest_memory.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
