"""LightGBM stacking options compared leak-free: each variant stacks the same first-level
models of a finished run, and is scored on the selection split (videos that neither the
first level nor LightGBM trained on) and on the held-out videos.

    .venv/bin/python bench/bench_stack_options.py --run RUN
        [--variants '{"name": "default"}' '{"name": "leaves15", "num_leaves": 15}' ...]
        [--members logistic,moe,...] [--out runs/bench_stack_options] [--results stack_options]

RUN is a pipeline run whose folds have a selection split (``RUN/store``,
``RUN/test_store``, ``RUN/zoo/NAME/{oof,test}``). A variant is a JSON object of
StackConfig fields plus its ``name``; ``members`` (a list of model names) restricts the
first-level models it stacks (drop-one comparisons). Resumable per variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results_table import write_results

from yt8mkit.data.store import Store
from yt8mkit.ensemble import run_stack
from yt8mkit.ensemble.config import StackConfig
from yt8mkit.rundir import prediction_gap

DEFAULT_VARIANTS = [
    '{"name": "default"}',
    '{"name": "leaves15_lr0.1", "num_leaves": 15, "learning_rate": 0.1}',
    '{"name": "leaves127_minleaf50", "num_leaves": 127, "min_data_in_leaf": 50}',
    '{"name": "top50", "top_n": 50}',
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS)
    parser.add_argument("--members", default="", help="comma-separated (default: all)")
    parser.add_argument("--extra", nargs="*", default=[],
                        help="NAME=DIR: another model's run directory (oof/, test/) as a member")
    parser.add_argument("--out", default="runs/bench_stack_options")
    parser.add_argument("--results", default="stack_options")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    store, test_store = Store(run / "store"), Store(run / "test_store")
    dirs = {p.parent.name: p.parent for p in (run / "zoo").glob("*/metrics.json")}
    dirs.update(dict((name, Path(d)) for name, d in (e.split("=", 1) for e in args.extra)))
    models = sorted(dirs)
    if args.members:
        models = [m for m in models if m in args.members.split(",")]
    rows, table = [], []
    for text in args.variants:
        spec = json.loads(text)
        name = spec.pop("name")
        members = spec.pop("members", models)
        config = StackConfig(**{"n_estimators": 600, "min_data_in_leaf": 100, **spec})
        began = time.perf_counter()
        result = run_stack({m: dirs[m] / "oof" for m in members}, store, out / name,
                           config, {m: dirs[m] / "test" for m in members})
        assert result.test is not None
        row = {"name": name, "members": members, "config": spec,
               "oof_gap": result.metrics["oof_gap"],
               "selection_gap": result.metrics.get("selection_gap"),
               "best_single_selection": max(result.metrics["inputs_selection_gap"].items(),
                                            key=lambda kv: kv[1]),
               "held_out_gap": prediction_gap(result.test, test_store),
               "seconds_this_call": time.perf_counter() - began}
        rows.append(row)
        table.append([name, f"{row['oof_gap']:.4f}", f"{row['selection_gap']:.4f}",
                      f"{row['selection_gap'] - row['best_single_selection'][1]:+.4f}",
                      f"{row['held_out_gap']:.4f}"])
        print(table[-1], flush=True)
    write_results(args.results, {"run": str(run), "rows": rows},
                  ["variant", "OOF GAP@20", "selection GAP@20",
                   "vs best single (selection)", "held-out GAP@20"], table)


if __name__ == "__main__":
    main()
