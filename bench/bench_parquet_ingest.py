"""Parquet ingest against pyarrow's own read of the same file.

Writes a Parquet file of video-level embeddings (default 50,000 videos, a 512-d and a
128-d float32 column as fixed-size lists, a string id, integer labels; 10,000 rows a row
group), then times, each in a fresh process and the file in the page cache:

- **pyarrow**: ``pq.read_table`` of the file, then every column to numpy (features as
  (videos, dim) float32 arrays, labels as offsets and values, ids as Python strings):
  the least any reader of the file does, without checks or writing anything;
- **ours**: ``ingest_embeddings`` of the file into a store (float16, every check:
  NaN/Inf, widths, float16 range, ids, labels, duplicates; the store written and
  journalled), with the same number of threads.

Reports the median seconds of ``--repeats`` runs, videos/s, the ratio (ours / pyarrow)
and each process's peak RSS (ours reads one row group at a time; ``read_table`` holds
the whole table).

    .venv/bin/python bench/bench_parquet_ingest.py [--videos 50000] [--dims 512,128]
        [--rows-per-group 10000] [--repeats 5] [--workers 2]

Writes bench/results/parquet_ingest.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_table import write_results


def write_file(path: Path, videos: int, dims: list[int], rows_per_group: int,
               seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    names = ["clip", "clap", *(f"emb{i}" for i in range(2, len(dims)))][: len(dims)]
    for start in range(0, videos, rows_per_group):
        n = min(rows_per_group, videos - start)
        columns: dict[str, pa.Array] = {"id": pa.array([f"vid{start + i:08d}" for i in range(n)])}
        for name, dim in zip(names, dims):
            values = rng.standard_normal((n, dim), dtype=np.float32)
            values /= np.linalg.norm(values, axis=1, keepdims=True)
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), dim)
        counts = rng.integers(1, 6, n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        columns["labels"] = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(rng.integers(0, 1000, int(counts.sum()))))
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=rows_per_group)
    assert writer is not None
    writer.close()


def _columns_to_numpy(table: object) -> dict:
    out = {}
    for name in table.column_names:  # type: ignore[attr-defined]
        col = table.column(name).combine_chunks()  # type: ignore[attr-defined]
        if name == "id":
            out[name] = col.to_pylist()
        elif name == "labels":
            out[name] = (col.offsets.to_numpy(), col.flatten().to_numpy())
        else:
            out[name] = col.flatten().to_numpy().reshape(len(col), -1)
    return out


def _read_with_pyarrow(path: str) -> int:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    _columns_to_numpy(table)
    return table.num_rows


def _stream_with_pyarrow(path: str) -> int:
    """The same, a row group at a time (what bounded memory costs pyarrow itself)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)  # read, not mapped: as ours (mapped pages would count in RSS)
    rows = 0
    for group in range(pf.metadata.num_row_groups):
        table = pf.read_row_group(group)
        _columns_to_numpy(table)
        rows += table.num_rows
    return rows


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


TRACE: list[float] = []  # the process's RSS after each unit ours appended


def _ingest_ours(path: str, workers: int) -> int:
    from yt8mkit.data.embedding_ingest import ingest_embeddings
    from yt8mkit.data.embeddings import EmbeddingOptions

    TRACE.clear()
    with tempfile.TemporaryDirectory(prefix="bench_parquet_") as folder:
        meta = ingest_embeddings([path], Path(folder) / "store",
                                 EmbeddingOptions(workers=workers),
                                 progress=lambda *_: TRACE.append(_rss_mb()))
        return meta.num_videos


READERS = {"pyarrow read_table": "table", "pyarrow row groups": "groups", "ours": "ours"}


def child(kind: str, path: str, workers: int) -> None:
    """Run in the measured process: two reads (the first in a fresh process, as a command
    line's; the second warm), their times and the process's peak RSS after the first."""
    import pyarrow as pa
    import pyarrow.parquet  # imported before the clock starts

    pa.set_cpu_count(workers)
    pa.set_io_thread_count(workers)
    if kind == "ours":
        import yt8mkit.data.embeddings
        import yt8mkit.data.ingest  # what ingest_embeddings imports on its first call
        import yt8mkit.data.parquet_source  # noqa: F401
    read = {"table": _read_with_pyarrow, "groups": _stream_with_pyarrow,
            "ours": lambda p: _ingest_ours(p, workers)}[kind]
    seconds = []
    for i in range(2):
        start = time.perf_counter()
        videos = read(path)
        seconds.append(time.perf_counter() - start)
        if i == 0:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
            trace = list(TRACE)
    report = {"seconds": seconds[0], "warm_seconds": seconds[1], "videos": videos,
              "peak_rss_mb": peak}
    if trace:  # bounded memory: the second half of the file takes no more than the first
        half = len(trace) // 2
        report["rss_mb_max_first_half"] = max(trace[:half] or trace)
        report["rss_mb_max_second_half"] = max(trace[half:])
    print(json.dumps(report))


def run(kind: str, path: Path, workers: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(path),
                           "--workers", str(workers)], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=50_000)
    parser.add_argument("--dims", default="512,128")
    parser.add_argument("--rows-per-group", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FILE"))
    parser.add_argument("--name", default="parquet_ingest")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.workers)
        return
    dims = [int(d) for d in args.dims.split(",")]
    load_before = os.getloadavg()  # other work on the machine slows every reader
    with tempfile.TemporaryDirectory(prefix="bench_parquet_file_") as folder:
        path = Path(folder) / "embeddings.parquet"
        write_file(path, args.videos, dims, args.rows_per_group)
        size = path.stat().st_size
        path.read_bytes()  # into the page cache: both readers start from it
        runs: dict[str, list[dict]] = {name: [] for name in READERS}
        for _ in range(args.repeats):  # interleaved: a busy spell hits each alike
            for name, kind in READERS.items():
                runs[name].append(run(kind, path, args.workers))
                print(f"{name}: {runs[name][-1]}", file=sys.stderr)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    warm = {k: statistics.median(r["warm_seconds"] for r in v) for k, v in runs.items()}
    peak = {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}
    base = "pyarrow read_table"
    ratio = med["ours"] / med[base]
    report = {
        "bench": args.name, "videos": args.videos, "dims": dims,
        "rows_per_group": args.rows_per_group, "file_mb": size / 1e6, "workers": args.workers,
        "repeats": args.repeats, "median_seconds": med, "median_warm_seconds": warm,
        "peak_rss_mb": peak, "videos_per_second": {k: args.videos / v for k, v in med.items()},
        "ratio_ours_over_read_table": ratio,
        "ratio_ours_over_read_table_warm": warm["ours"] / warm[base],
        "ratio_ours_over_row_groups": med["ours"] / med["pyarrow row groups"],
        # RSS after each unit, its largest value in the first and in the second half of the
        # file, over every run: equal where memory does not grow with the input
        "ours_rss_mb_max_halves": [max(r["rss_mb_max_first_half"] for r in runs["ours"]),
                                   max(r["rss_mb_max_second_half"] for r in runs["ours"])],
        "runs": runs,
        "load_average_before_after": [load_before, os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "pyarrow": __import__("pyarrow").__version__},
    }
    rows = [[name, f"{med[name]:.3f}", f"{args.videos / med[name]:,.0f}", f"{warm[name]:.3f}",
             f"{peak[name]:.0f}"] for name in READERS]
    footer = ["", f"{args.videos:,} videos x {'+'.join(map(str, dims))} float32 "
                  f"({size / 1e6:.0f} MB of Parquet, {args.rows_per_group:,} rows a row group), "
                  f"{args.workers} threads, median of {args.repeats} fresh processes: ours / "
                  f"pq.read_table = **{ratio:.2f}x** the time (warm, a second read in the "
                  f"same process: {warm['ours'] / warm[base]:.2f}x; ours / pyarrow's row "
                  f"groups: {med['ours'] / med['pyarrow row groups']:.2f}x); ours' RSS after "
                  f"each unit, largest in the file's first half / second half: "
                  f"{report['ours_rss_mb_max_halves'][0]:.0f} / "
                  f"{report['ours_rss_mb_max_halves'][1]:.0f} MB"]
    write_results(args.name, report,
                  ["reader", "seconds", "videos/s", "warm seconds", "peak RSS MB"], rows, footer)


if __name__ == "__main__":
    main()
