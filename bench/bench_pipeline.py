"""The whole pipeline on the real dev data: wall time, peak memory of the process tree,
and the paper's Table 1 from the run (every first-level model, the LightGBM ensemble,
the final models on soft and hard labels, and the held-out GAP@20 of the submission).

    .venv/bin/python bench/bench_pipeline.py [--config configs/real/pipeline.yaml]
        [--out runs/bench_pipeline]

Runs `yt8m pipeline CONFIG --out RUN` as a child process in a fresh run directory,
sampling the resident memory of it and its workers every 0.5 s; writes
bench/results/pipeline.json and bench/results/pipeline.md. With ``--existing RUN
--time-log LOG`` it reports a run made as ``/usr/bin/time -v yt8m pipeline ... 2> LOG``
instead (wall time and the largest process's peak RSS as GNU time measured them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from proc_tree import tree_rss
from results_table import write_results

ROOT = Path(__file__).resolve().parents[1]


def run(config: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    yt8m = Path(sys.executable).parent / "yt8m"
    began = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        process = subprocess.Popen([str(yt8m), "pipeline", str(config), "--out", str(out)],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.5)
    if process.returncode:
        raise RuntimeError(f"the pipeline failed (exit {process.returncode}); see its log")
    return {"wall_seconds": time.perf_counter() - began, "peak_tree_rss_mb": peak / 1e6}


def from_time_log(log: Path) -> dict:
    """Wall time and peak RSS from GNU time's -v report."""
    found: dict = {}
    for line in log.read_text().splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            clock = [float(x) for x in line.rsplit(" ", 1)[1].split(":")]
            found["wall_seconds"] = sum(v * 60**i for i, v in enumerate(reversed(clock)))
        elif line.startswith("Maximum resident set size (kbytes)"):
            found["peak_rss_mb_largest_process"] = int(line.rsplit(" ", 1)[1]) / 1e3
        elif line.startswith("Exit status") and line.rsplit(" ", 1)[1] != "0":
            raise RuntimeError(f"{log}: the pipeline failed ({line})")
    if "wall_seconds" not in found:
        raise RuntimeError(f"{log}: no GNU time -v report")
    return found


def table(run_dir: Path) -> tuple[list[dict], dict]:
    sys.path.insert(0, str(ROOT))
    from yt8mkit.zoo.table import collect_rows

    rows = [{"model": r.name, "frame_level": r.frame_level, "oof_gap": r.gap,
             "oof_bce": r.bce, "in_ensemble": r.in_ensemble, "test_gap": r.test_gap,
             "selection_gap": r.selection_gap}
            for r in collect_rows(run_dir)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return rows, metrics


def sizes(run_dir: Path) -> dict:
    zoo = {p.parent.name: sum(f.stat().st_size for f in p.parent.glob("fold*/best.pt"))
           for p in (run_dir / "zoo").glob("*/metrics.json")}
    final = run_dir / "final_model.onnx"
    return {"first_level_checkpoints_bytes": zoo,
            "final_model_onnx_bytes": final.stat().st_size if final.is_file() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "real" / "pipeline.yaml"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_pipeline"))
    parser.add_argument("--existing", default=None, help="report this finished run")
    parser.add_argument("--time-log", default=None, help="its GNU time -v output")
    parser.add_argument("--note", default=None, help="how the run was made, kept in the JSON")
    args = parser.parse_args()
    if args.existing:
        out = Path(args.existing)
        measured = from_time_log(Path(args.time_log))
    else:
        out = Path(args.out)
        measured = run(Path(args.config), out)
    rows, metrics = table(out)
    report = {
        "config": args.config, "note": args.note, **measured,
        "pipeline_seconds": metrics.get("seconds"),
        "test": metrics.get("test"), "export": metrics.get("export"),
        "distill": metrics.get("distill"), "sizes": sizes(out), "rows": rows,
        "machine": {"cores": os.cpu_count(), "machine": platform.machine()},
    }
    table_rows = [
        [row["model"], "yes" if row["frame_level"] else "no", f"{row['oof_gap']:.4f}",
         "—" if row["oof_bce"] is None else f"{row['oof_bce']:.2e}",
         {True: "yes", False: "no", None: "—"}[row["in_ensemble"]],
         "—" if row["selection_gap"] is None else f"{row['selection_gap']:.4f}",
         "—" if row["test_gap"] is None else f"{row['test_gap']:.4f}"]
        for row in rows
    ]
    test = metrics.get("test") or {}
    peak = measured.get("peak_tree_rss_mb", measured.get("peak_rss_mb_largest_process"))
    footer = ["", f"Held-out GAP@20 of the submission (final model, ONNX): "
              f"{test.get('gap', float('nan')):.4f}; wall time {measured['wall_seconds']:.0f} s, "
              f"peak memory {peak:.0f} MB."]
    footer.append("Selection GAP@20: the 10% of dev/ that no model of either level trained "
                  "on (leak-free for every row); OOF GAP@20 of second-level rows is leaky.")
    write_results("pipeline", report, ["model", "frame-level", "OOF GAP@20", "BCE",
                                       "in ensemble", "selection GAP@20", "held-out GAP@20"],
                  table_rows, footer)

if __name__ == "__main__":
    main()
