"""What training first-level models over more than one partition into folds
(``TrainConfig.repeats``, train/repeats.py) does to the ensemble and to distillation, on
a finished pipeline run: the named members get R partitions (the run's own folds are
partition 0, reused, never written to), the stack and the soft-label students and final
layer are trained again on them, and every figure is set beside the run's own.

    .venv/bin/python bench/bench_repeats.py [--run runs/real_pipeline]
        [--config configs/real/pipeline.yaml] [--members resnet_like] [--repeats 2]
        [--out runs/bench_repeats] [--workers 2] [--results repeats]

The new run directory (--out) links the run's stores and its other members, so only the
new partitions, the stack and the soft-label second level are computed (resumable).
Writes bench/results/{results}.json and .md: out-of-fold GAP@20 on the training videos
(what the stack learns from and the soft labels are made of), selection-split and
held-out GAP@20.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import yaml
from results_table import write_results

from yt8mkit.data.folds import fold_ids
from yt8mkit.data.predictions import Predictions
from yt8mkit.distill.run import run_distill
from yt8mkit.ensemble import run_stack
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.pipeline.layout import open_run
from yt8mkit.rundir import prediction_gap
from yt8mkit.train.config import TrainConfig
from yt8mkit.zoo.runner import run_zoo

ROOT = Path(__file__).resolve().parents[1]


def _link(target: Path, link: Path) -> None:
    if not link.exists():
        os.symlink(target.resolve(), link)


def _lay_out(run: Path, out: Path, members: list[str], repeats: int
             ) -> dict[str, TrainConfig]:
    """``out`` as a run directory whose repeated members' partition 0 is ``run``'s folds
    (linked: the same config, so they are done), everything else linked as it is."""
    (out / "zoo").mkdir(parents=True, exist_ok=True)
    _link(run / "store", out / "store")
    _link(run / "test_store", out / "test_store")
    shutil.copy(run / "config.yaml", out / "config.yaml")
    configs = {}
    for member_dir in sorted(p for p in (run / "zoo").iterdir() if p.is_dir()):
        name = member_dir.name
        if name not in members:
            _link(member_dir, out / "zoo" / name)
            continue
        recorded = yaml.safe_load((member_dir / "config.yaml").read_text())
        config = TrainConfig.model_validate({**recorded, "repeats": repeats})
        first = out / "zoo" / name / "repeat0"
        first.mkdir(parents=True, exist_ok=True)
        shutil.copy(member_dir / "config.yaml", first / "config.yaml")
        for fold_dir in sorted(member_dir.glob("fold*")):
            _link(fold_dir, first / fold_dir.name)
        configs[name] = config
    missing = sorted(set(members) - set(configs))
    if missing:
        raise SystemExit(f"{run}/zoo has no trained member {missing}")
    return configs


def _member_row(label: str, metrics: dict, store_gap: float) -> list[str]:
    return [label, f"{store_gap:.4f}", f"{metrics['selection_gap']:.4f}",
            f"{metrics.get('test_gap', float('nan')):.4f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(ROOT / "runs" / "real_pipeline"))
    parser.add_argument("--config", default=str(ROOT / "configs" / "real" / "pipeline.yaml"))
    parser.add_argument("--members", default="resnet_like")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_repeats"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results", default="repeats")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    members = args.members.split(",")
    distill_config = PipelineConfig.from_yaml(args.config).distill
    if distill_config is None:
        raise SystemExit(f"{args.config}: no distill section")
    began = time.perf_counter()
    configs = _lay_out(run, out, members, args.repeats)
    before = open_run(run)
    store, test = before.store, before.test_store
    training = store.folds() >= 0

    def train_gap(path: Path) -> float:
        return prediction_gap(Predictions(path), store, training.nonzero()[0])

    zoo = run_zoo(configs, str(store.path), out / "zoo", str(test.path) if test else None,
                  report=print, workers=args.workers)
    if zoo.failed:
        raise SystemExit(f"failed jobs: {zoo.failed}")
    # Opened once the repeated members are complete: the stack takes every member.
    after = open_run(out)
    if sorted(after.models) != sorted(before.models):
        raise SystemExit(f"members {sorted(after.models)}, the run's {sorted(before.models)}")
    stacked = run_stack(after.prediction_dirs("oof"), store, out / "ensemble", after.stack,
                        after.prediction_dirs("test") if test else None)
    distilled = run_distill(store, stacked.oof, out / "distill", distill_config, test,
                            report=print, kinds=["soft"], workers=args.workers)
    seconds = time.perf_counter() - began

    rows, report = [], {"run": str(run), "members": members, "repeats": args.repeats,
                        "folds": len(fold_ids(store.folds())), "seconds": seconds}
    for name in members:
        old = json.loads((run / "zoo" / name / "metrics.json").read_text())
        rows.append(_member_row(f"{name}, 1 partition", old,
                                train_gap(run / "zoo" / name / "oof")))
        rows.append(_member_row(f"{name}, {args.repeats} partitions", zoo.metrics[name],
                                train_gap(out / "zoo" / name / "oof")))
    old_stack = json.loads((before.ensemble_dir / "metrics.json").read_text())
    old_test = prediction_gap(Predictions(before.ensemble_dir / "test"), test) if test else 0.0
    rows.append(["LightGBM ensemble, run's members",
                 f"{train_gap(before.ensemble_dir / 'oof'):.4f}",
                 f"{old_stack['selection_gap']:.4f}", f"{old_test:.4f}"])
    new_test = prediction_gap(stacked.test, test) if test and stacked.test else 0.0
    rows.append([f"LightGBM ensemble, {'+'.join(members)} repeated",
                 f"{train_gap(out / 'ensemble' / 'oof'):.4f}",
                 f"{stacked.metrics['selection_gap']:.4f}", f"{new_test:.4f}"])
    old_distill = json.loads((run / "distill" / "metrics.json").read_text())
    for key, label in (("soft_student0", "soft student 0"), ("soft_student1", "soft student 1"),
                       ("soft_final", "final model (soft labels)")):
        for source, metrics in (("run's", old_distill), ("repeated", distilled)):
            if key in metrics:
                m = metrics[key]
                rows.append([f"{label}, {source} teacher", "—",
                             f"{m['selection_gap']:.4f}",
                             f"{m['test_gap']:.4f}" if "test_gap" in m else ""])
    # Training time of the partitions added (each fold's, single-threaded, added up).
    added = {name: sum(f["seconds"] for part in zoo.metrics[name]["partitions"][1:]
                       for f in part["folds"]) for name in members}
    report["added_training_seconds"] = added
    report["rows"] = rows
    write_results(args.results, report,
                  ["model", "out-of-fold GAP@20 (training videos)", "selection GAP@20",
                   "held-out GAP@20"], rows,
                  [f"\n{args.repeats} partitions of {', '.join(members)}; the other members "
                   f"and the students' recipe as in the run; training of the added "
                   f"partitions: " + ", ".join(f"{n} {s:.0f} s" for n, s in added.items())
                   + f"; this call {seconds:.0f} s "
                   f"(`.venv/bin/python bench/bench_repeats.py`)."])


if __name__ == "__main__":
    main()
