"""Frame- and video-level models stacked together: `yt8m pipeline` on
configs/synthetic/frame_pipeline.yaml (synthetic frame-level data, k-means centroids and a
derived representation computed by the run, a zoo of both levels, LightGBM over them),
and what each level brings to the stack (issue 16, point 4).

    .venv/bin/python bench/bench_frame_pipeline.py [--config CONFIG] [--out RUN] [--fresh]

Runs the pipeline as a child process (resumable: a rerun without --fresh skips finished
stages), then writes bench/results/frame_pipeline.{json,md}: every member's out-of-fold
GAP@20 and its GAP@20 on the selection split (videos no first-level model and no LightGBM
model trained on) and on the labelled test videos, the LightGBM ensemble's and its gain
over the best single model on each, and each level's share of LightGBM's total gain
importance (summed over the fold boosters, columns mapped to models with the stack's
FeatureLayout; a derived representation's model counts as frame-level, its input being
frames).
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

import lightgbm as lgb
import numpy as np
import torch
from results_table import write_results

from yt8mkit.ensemble.config import StackConfig
from yt8mkit.ensemble.features import FeatureLayout

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "synthetic" / "frame_pipeline.yaml"


def run(config: Path, out: Path, fresh: bool) -> float | None:
    """Wall seconds of the run, or None when it found every stage done."""
    if fresh and out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "a") as log:
        code = subprocess.call([sys.executable, "-m", "yt8mkit.cli.main", "pipeline",
                                str(config), "--out", str(out)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy())
    if code:
        raise RuntimeError(f"the pipeline failed (exit {code}); see {out.parent / out.name}.log")
    return time.perf_counter() - began


def one_level_stacks(run_dir: Path, levels: dict[str, str]) -> dict:
    """The same LightGBM stack over each level's members alone (into RUN/ablation/LEVEL,
    resumable): what the other level adds to the stack, in GAP@20."""
    from yt8mkit.data.store import Store
    from yt8mkit.ensemble import run_stack
    from yt8mkit.rundir import prediction_gap

    metrics = json.loads((run_dir / "ensemble" / "metrics.json").read_text())
    config = StackConfig.model_validate(metrics["config"])
    store = Store(run_dir / "store")
    test_store = Store(run_dir / "test_store") if Store.is_store(run_dir / "test_store") \
        else None
    out = {}
    for level in ("video", "frame"):
        names = sorted(m for m, lv in levels.items() if lv == level)
        zoo = run_dir / "zoo"
        print(f"stack of the {level}-level members alone: {', '.join(names)}", flush=True)
        result = run_stack({m: zoo / m / "oof" for m in names}, store,
                           run_dir / "ablation" / level, config,
                           {m: zoo / m / "test" for m in names} if test_store else None)
        out[level] = {"members": names, "oof_gap": result.metrics["oof_gap"],
                      "selection_gap": result.metrics.get("selection_gap"),
                      "test_gap": (prediction_gap(result.test, test_store)
                                   if test_store is not None and test_store.has_labels
                                   and result.test is not None else None)}
    return out


def gain_shares(run_dir: Path, levels: dict[str, str]) -> dict:
    """LightGBM's gain importance summed over the fold boosters, per model and per level;
    the columns that belong to no one model (mean score, model count, label, label
    frequency) are reported as ``shared``."""
    metrics = json.loads((run_dir / "ensemble" / "metrics.json").read_text())
    stack = StackConfig.model_validate(metrics["config"])
    names = tuple(sorted(levels))  # run_stack orders its inputs by name
    layout = FeatureLayout(names, stack.rank_features, stack.context_features)
    owner = {}
    for column in layout.columns:
        kind, _, rest = column.partition("_")
        if kind in ("score", "rank", "top1") and rest.split("_", 1)[0].isdigit():
            owner[column] = names[int(rest.split("_", 1)[0])]
    gains = np.zeros(layout.num_features)
    boosters = sorted((run_dir / "ensemble").glob("fold*/model.txt"))
    for path in boosters:
        booster = lgb.Booster(model_file=str(path))
        if booster.feature_name() != layout.columns:
            raise RuntimeError(f"{path}: its columns are not the layout's {layout.columns}")
        gains += booster.feature_importance(importance_type="gain")
    total = float(gains.sum())
    per_model = dict.fromkeys(names, 0.0)
    shared = 0.0
    for column, gain in zip(layout.columns, gains):
        if column in owner:
            per_model[owner[column]] += gain / total
        else:
            shared += gain / total
    per_level = {"video": 0.0, "frame": 0.0}
    for name, share in per_model.items():
        per_level[levels[name]] += share
    members = per_level["video"] + per_level["frame"]
    return {
        "boosters": len(boosters),
        "total_gain": total,
        "per_column": {c: float(g / total) for c, g in zip(layout.columns, gains)},
        "per_model": per_model,
        "per_level": {**per_level, "shared": shared},
        # The same without the shared columns: how the members' own gain splits.
        "per_level_of_members": {k: v / members for k, v in per_level.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_frame_pipeline"))
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument("--report-only", action="store_true", help="run nothing")
    parser.add_argument("--results", default="frame_pipeline")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the stacks of each level's members alone")
    args = parser.parse_args()
    out = Path(args.out)
    if not args.report_only:
        seconds = run(Path(args.config), out, args.fresh)
        if args.fresh:  # the wall time of a whole run, kept for reports of resumed ones
            (out / "bench_seconds.json").write_text(json.dumps(seconds))
    timed = out / "bench_seconds.json"
    seconds = json.loads(timed.read_text()) if timed.is_file() else None

    metrics = json.loads((out / "metrics.json").read_text())
    stack = json.loads((out / "ensemble" / "metrics.json").read_text())
    members = json.loads((out / "ensemble" / "members.json").read_text())
    models = metrics["models"]
    levels = {m: "frame" if models[m].get("frame_level") or models[m].get(
        "derived_from_frames") else "video" for m in members}
    shares = gain_shares(out, levels)
    rows = []
    for name in members:
        m = models[name]
        train_seconds = sum(
            json.loads(p.read_text())["result"]["seconds"]
            for p in (out / "zoo" / name).glob("fold*/metrics.json"))
        rows.append({"model": name, "level": levels[name],
                     "derived": m.get("derived_from_frames"),
                     "oof_gap": stack["inputs_oof_gap"][name],
                     "selection_gap": stack.get("inputs_selection_gap", {}).get(name),
                     "test_gap": m.get("test_gap"),
                     "gain_share": shares["per_model"][name],
                     "train_seconds": train_seconds})
    rows.sort(key=lambda r: -r["oof_gap"])
    ensemble = {"model": "lightgbm_ensemble", "oof_gap": stack["oof_gap"],
                "selection_gap": stack.get("selection_gap"),
                "test_gap": metrics["ensemble"].get("test_gap")}
    gains = {}
    for split in ("oof_gap", "selection_gap", "test_gap"):
        scored = [r for r in rows if r[split] is not None]
        if ensemble[split] is not None and scored:
            best = max(scored, key=lambda r: r[split])
            gains[split] = {"best_single": best["model"], "best_single_gap": best[split],
                            "ensemble_gap": ensemble[split],
                            "gain": ensemble[split] - best[split]}
    by_level = {}
    for level in ("video", "frame"):
        scored = [r for r in rows if r["level"] == level]
        best = max(scored, key=lambda r: r["oof_gap"])
        by_level[level] = {"models": len(scored), "best": best["model"],
                           "best_oof_gap": best["oof_gap"]}
    alone = None if args.no_ablation else one_level_stacks(out, levels)
    config = Path(args.config).resolve()
    report = {
        "config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
        "command": ".venv/bin/python bench/bench_frame_pipeline.py --fresh",
        "run_seconds": seconds,
        "pipeline_seconds": metrics.get("seconds"),
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__,
                    "lightgbm": lgb.__version__, "machine": platform.machine()},
        "baseline_label_frequency": models.get("label_frequency"),
        "members": rows,
        "ensemble": ensemble,
        "gain_over_best_single": gains,
        "best_by_level": by_level,
        "gain_importance": shares,
        "one_level_stacks": alone,
        "stack_folds": stack["folds"],
        "config_text": config.read_text(),
    }

    def f(value: float | None) -> str:
        return "—" if value is None else f"{value:.4f}"

    table = [[r["model"] + (" (derived)" if r["derived"] else ""), r["level"],
              f(r["oof_gap"]), f(r["selection_gap"]), f(r["test_gap"]),
              f"{r['gain_share']:.1%}", f"{r['train_seconds']:.0f}"] for r in rows]
    for level, stack_alone in (alone or {}).items():
        table.append([f"LightGBM, {level}-level members alone", level,
                      f(stack_alone["oof_gap"]), f(stack_alone["selection_gap"]),
                      f(stack_alone["test_gap"]), "", ""])
    table.append(["**LightGBM ensemble**", "both", f(ensemble["oof_gap"]),
                  f(ensemble["selection_gap"]), f(ensemble["test_gap"]), "", ""])
    level = shares["per_level"]
    footer = ["", "Ensemble gain over the best single model: " + ", ".join(
        f"{split.replace('_gap', '').replace('oof', 'out of fold')} {g['gain']:+.4f} "
        f"(vs {g['best_single']})" for split, g in gains.items()) + ".",
        f"LightGBM gain importance (sum over {shares['boosters']} fold boosters): "
        f"frame-level members {level['frame']:.1%}, video-level members "
        f"{level['video']:.1%}, shared columns (mean score, model count, label, label "
        f"frequency) {level['shared']:.1%}; of the members' own columns, frame-level "
        f"{shares['per_level_of_members']['frame']:.1%}."]
    if seconds is not None:
        footer.append(f"The run took {seconds / 60:.1f} min (`{report['command']}`).")
    write_results(args.results, report,
                  ["model", "level", "OOF GAP@20", "selection GAP@20", "test GAP@20",
                   "LightGBM gain share", "train s"], table, footer)


if __name__ == "__main__":
    main()
