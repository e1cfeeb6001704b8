"""How the final layer learns over frozen students, compared on the same students: the
out-of-fold layer (distill/oof_final.py: every training video's features from the
students that did not train on it; the paper's scheme) against the per-fold layer (each
fold's layer over its own students' training videos), both chosen and scored on the
selection split and scored on the held-out videos.

    .venv/bin/python bench/bench_final_fit.py --run RUN --distill DISTILL_DIR
        [--config configs/real/pipeline.yaml] [--kinds soft,hard] [--out runs/bench_final_fit]
        [--results final_fit]

RUN holds the store (with a selection split) and ``test_store``; DISTILL_DIR a finished
distillation with ``final_fit: per_fold`` (its students and per-fold final models, its
``metrics.json``, its ``soft_labels``). The out-of-fold layer is trained with the config's
``distill.final_train`` into --out. Writes bench/results/{results}.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results_table import write_results

from yt8mkit.data.store import Store
from yt8mkit.distill.oof_final import run_oof_final
from yt8mkit.distill.run import _train_config, final_model_factory, select_on_for
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.train.run import soft_targets, store_folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--distill", required=True)
    parser.add_argument("--config", default="configs/real/pipeline.yaml")
    parser.add_argument("--kinds", default="soft,hard")
    parser.add_argument("--out", default="runs/bench_final_fit")
    parser.add_argument("--results", default="final_fit")
    args = parser.parse_args()
    run, distill_dir, out = Path(args.run), Path(args.distill), Path(args.out)
    config = PipelineConfig.from_yaml(args.config).distill
    if config is None:
        raise SystemExit(f"{args.config}: no distill section")
    store, test = Store(run / "store"), Store(run / "test_store")
    per_fold = json.loads((distill_dir / "metrics.json").read_text())
    students = config.student_models()
    report: dict = {"run": str(run), "distill": str(distill_dir),
                    "final_train": config.final_train, "kinds": {}}
    rows = []
    for kind in args.kinds.split(","):
        dirs = [distill_dir / kind / f"student{i}" for i in range(len(students))]
        factory = final_model_factory(store, dirs, students, False)
        final_config = _train_config(f"{kind}_final", students[0], config.final_train,
                                     select_on_for(store))
        targets = (soft_targets(distill_dir / "soft_labels", store) if kind == "soft"
                   else None)
        began = time.perf_counter()
        oof = run_oof_final(final_config, store, store_folds(store), factory, targets,
                            out / kind / "final", test, print)
        seconds = time.perf_counter() - began
        old = per_fold[f"{kind}_final"]
        report["kinds"][kind] = {"out_of_fold": oof, "per_fold": old, "seconds": seconds}
        for name, m in (("per_fold", old), ("out_of_fold", oof)):
            rows.append([kind, name, f"{m['selection_gap']:.4f}", f"{m['test_gap']:.4f}"])
            print(rows[-1], flush=True)
    write_results(args.results, report,
                  ["labels", "final layer", "selection GAP@20", "held-out GAP@20"], rows,
                  [f"\nStudents: {[s.describe() for s in config.students]} of {distill_dir}; "
                   f"held-out: {test.num_videos:,} videos."])


if __name__ == "__main__":
    main()
