"""Ingest speed: ``yt8m ingest`` (``yt8mkit.data.ingest.ingest``, CRCs checked, 2 decoding threads,
end to end into a fresh store in a temporary directory) against TensorFlow's fastest
parse of the same files (``tf_parse.py``: TFRecordDataset, batches of 256, vectorised
``tf.io.parse_example``), on the real video-level shards of ``yt8m-2018-video/dev``.

TensorFlow runs in its own process from ``.venv-tf``, kept alive for the whole bench:
each repetition times one TensorFlow pass of every configuration, then one ingest of
each of ours, so that load from elsewhere on a shared machine falls on both alike. The
medians are compared. Every file is read once before timing, so the OS page cache is
warm for both sides: this measures decoding, not the disk.

    .venv/bin/python bench/bench_ingest.py [--data DIR] [--repeats 7] [--workers 2]

Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.sources import resolve_sources

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEV = ROOT.parent / "shared" / "data" / "yt8m-2018-video" / "dev"
TF_PYTHON = ROOT / ".venv-tf" / "bin" / "python"
TF_SCRIPT = ROOT / "bench" / "tf_parse.py"
SETUP_TF = "python3 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu"
# As tf_parse.py: a pause before each timed run, so that neither side's idle threads,
# still spinning, take cores from the other's run.
SETTLE_S = 0.3


class TensorFlowReference:
    """``tf_parse.py --serve`` in the TensorFlow venv: one timed pass a ``run()``."""

    def __init__(self, data: Path) -> None:
        self.process = subprocess.Popen(
            [str(TF_PYTHON), str(TF_SCRIPT), str(data), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._reply()

    def _reply(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{TF_SCRIPT.name} exited with code {self.process.wait()}")
        return json.loads(line)

    def run(self) -> dict[str, dict[str, float]]:
        assert self.process.stdin is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def _cpu_seconds() -> tuple[float, float]:
    """CPU time of this process (ingest's decoding threads included), and of its reaped
    children (none since ingest decodes on threads; kept so that a change back shows)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def time_ingest(data: Path, run: Run) -> dict[str, float]:
    """One ingest into a new store: videos, wall seconds, CPU seconds (parent and workers);
    the temporary directory's removal is not timed."""
    folder = Path(tempfile.mkdtemp(prefix="bench_ingest_", dir=run.tmp))
    time.sleep(SETTLE_S)
    try:
        start, (parent, workers) = time.perf_counter(), _cpu_seconds()
        meta = ingest([data], folder / "store", run.config)
        seconds = time.perf_counter() - start
        parent_end, workers_end = _cpu_seconds()
    finally:
        shutil.rmtree(folder)
    return {
        "records": meta.num_videos,
        "seconds": seconds,
        "cpu_seconds": parent_end - parent + workers_end - workers,
        "parent_cpu_seconds": parent_end - parent,
    }


@dataclass
class Run:
    config: IngestConfig
    tmp: str | None = None  # where the store goes; None: the system's temp dir


def _summary(runs: list[dict[str, float]]) -> dict[str, object]:
    records = int(runs[0]["records"])
    seconds = [r["seconds"] for r in runs]
    cpu = [r["cpu_seconds"] for r in runs]
    median = statistics.median(seconds)
    parent = [r["parent_cpu_seconds"] for r in runs if "parent_cpu_seconds" in r]
    return {
        "records": records,
        "seconds": seconds,
        "cpu_seconds": cpu,
        **({"parent_cpu_seconds": parent} if parent else {}),
        "median_s": median,
        "records_per_s": records / median,
        "records_per_cpu_s": records / statistics.median(cpu),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=3862)
    args = parser.parse_args(argv)
    console = Console()
    if not args.data.is_dir():
        console.print(f"no data at {args.data}")
        return 2
    files = resolve_sources([args.data])
    config = IngestConfig(workers=args.workers, num_classes=args.num_classes)
    ours = {
        "yt8m ingest (float16 store, the default)": Run(config),
        "yt8m ingest --float32": Run(config.model_copy(update={"video_dtype": "float32"})),
    }
    if Path("/dev/shm").is_dir():
        # Diagnostic: the same ingest with the store on tmpfs, which shows what the
        # store's file system costs (its per-file progress journal is renamed into place).
        ours["yt8m ingest, store on tmpfs (/dev/shm)"] = Run(config, "/dev/shm")
    load_before = os.getloadavg()
    tf_ref: TensorFlowReference | None = None
    if TF_PYTHON.exists():
        tf_ref = TensorFlowReference(args.data)
    else:
        console.print(f"TensorFlow not measured: {TF_PYTHON} is missing. Create it with")
        console.print(f"  {SETUP_TF}")
    for run in ours.values():  # warm-up: page cache, worker start-up paths, imports
        time_ingest(args.data, run)
    tf_runs: list[dict[str, dict[str, float]]] = []
    our_runs: dict[str, list[dict[str, float]]] = {name: [] for name in ours}
    for _ in range(args.repeats):
        if tf_ref is not None:
            tf_runs.append(tf_ref.run())
        for name, run in ours.items():
            our_runs[name].append(time_ingest(args.data, run))
    if tf_ref is not None:
        tf_ref.close()
    load_after = os.getloadavg()

    videos = int(next(iter(our_runs.values()))[0]["records"])
    for name, runs in [
        *our_runs.items(),
        *((n, [r[n] for r in tf_runs]) for n in tf_runs[:1][0] if tf_runs),
    ]:
        if any(int(r["records"]) != videos for r in runs):
            raise RuntimeError(f"{name} read another number of records than {videos}")
    tf_summary = {
        name: _summary([r[name] for r in tf_runs]) for name in (tf_runs[0] if tf_runs else {})
    }
    tf_best = max(tf_summary, key=lambda n: tf_summary[n]["records_per_s"]) if tf_summary else None
    tf_rate = float(tf_summary[tf_best]["records_per_s"]) if tf_best else None
    our_summary = {}
    for name, runs in our_runs.items():
        row = _summary(runs)
        row["ratio_vs_tf_best"] = row["records_per_s"] / tf_rate if tf_rate else None
        our_summary[name] = row

    table = Table(
        title=f"{videos:,} videos, {len(files)} files, median of {args.repeats}, warm page cache"
    )
    for column in ("reader", "median s", "records/s", "records/CPU-s", "ours / TF best"):
        table.add_column(column, justify="left" if column == "reader" else "right")
    for name, row in tf_summary.items():
        mark = " (best)" if name == tf_best else ""
        table.add_row(
            f"TensorFlow {name}{mark}",
            f"{row['median_s']:.3f}",
            f"{row['records_per_s']:,.0f}",
            f"{row['records_per_cpu_s']:,.0f}",
            "",
        )
    for name, row in our_summary.items():
        ratio = f"{row['ratio_vs_tf_best']:.2f}x" if row["ratio_vs_tf_best"] else "not measured"
        table.add_row(
            name,
            f"{row['median_s']:.3f}",
            f"{row['records_per_s']:,.0f}",
            f"{row['records_per_cpu_s']:,.0f}",
            ratio,
        )
    console.print(table)
    for name, row in our_summary.items():
        parent = statistics.median(row["parent_cpu_seconds"])
        total = statistics.median(row["cpu_seconds"])
        console.print(
            f"{name}: CPU {total:.3f} s a run, of which this process {parent:.3f} s"
        )
    console.print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "bench": "ingest",
        "data": str(args.data),
        "files": len(files),
        "videos": videos,
        "repeats": args.repeats,
        "workers": args.workers,
        "check_crc": True,
        "page_cache": "warm for both sides (every file read before timing)",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "tensorflow": {
            **(tf_ref.info if tf_ref else {"measured": False, "setup": SETUP_TF}),
            "configs": tf_summary,
            "best": tf_best,
            "records_per_s": tf_rate,
        },
        "ours": our_summary,
    }
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {RESULTS / 'ingest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
