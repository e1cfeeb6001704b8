"""Nearest-neighbour zoo members (yt8mkit/zoo/neighbours.py) under a few settings, on a
finished pipeline run's store and folds: GAP@20 on the selection split (no model of the
run trained on it) and on the held-out videos, and seconds.

    .venv/bin/python bench/bench_neighbours.py --run RUN
        [--variants '{"name": "k50_t0.1", "k": 50, "temperature": 0.1}' ...]
        [--out runs/bench_neighbours] [--results neighbours]

RUN holds ``store`` (with a selection split) and ``test_store``. Writes
bench/results/{results}.json and .md. Resumable per variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results_table import write_results

from yt8mkit.data.store import Store
from yt8mkit.zoo.neighbours import NeighboursSpec, run_neighbours

DEFAULT_VARIANTS = [
    '{"name": "k50_t0.05_a0.5", "k": 50, "temperature": 0.05, "weights": {"audio": 0.5}}',
    '{"name": "k50_t0.1_a0.5", "k": 50, "temperature": 0.1, "weights": {"audio": 0.5}}',
    '{"name": "k100_t0.1_a0.5", "k": 100, "temperature": 0.1, "weights": {"audio": 0.5}}',
    '{"name": "k50_t0.1_a0.3", "k": 50, "temperature": 0.1, "weights": {"audio": 0.3}}',
    '{"name": "k50_t0.1_a1", "k": 50, "temperature": 0.1}',
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS)
    parser.add_argument("--out", default="runs/bench_neighbours")
    parser.add_argument("--results", default="neighbours")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    store, test = Store(run / "store"), Store(run / "test_store")
    report, rows = {"run": str(run), "variants": {}}, []
    for text in args.variants:
        spec_fields = json.loads(text)
        name = spec_fields.pop("name")
        began = time.perf_counter()
        metrics = run_neighbours(name, NeighboursSpec(**spec_fields), store, out / name, test)
        seconds = sum(f["seconds"] for f in metrics["folds"])
        report["variants"][name] = {**spec_fields, "selection_gap": metrics["selection_gap"],
                                    "test_gap": metrics["test_gap"],
                                    "oof_gap": metrics["oof_gap"], "fold_seconds": seconds,
                                    "wall_seconds_this_call": time.perf_counter() - began}
        rows.append([name, f"{metrics['selection_gap']:.4f}", f"{metrics['test_gap']:.4f}",
                     f"{seconds:.0f}"])
        print(rows[-1], flush=True)
    write_results(args.results, report,
                  ["variant", "selection GAP@20", "held-out GAP@20", "seconds (5 folds)"], rows,
                  [f"\nStore: {run / 'store'} ({store.num_videos:,} videos), held-out "
                   f"{test.num_videos:,}."])


if __name__ == "__main__":
    main()
