"""What a run directory says about itself: its config, Table 1, timings and every
model's training curves, read from the files the stages wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from yt8mkit.analysis.figures import Curve
from yt8mkit.zoo.table import TableRow, collect_rows


@dataclass
class RunInfo:
    run_dir: Path
    config_text: str
    rows: list[TableRow]
    curves: list[Curve]
    timings: list[tuple[str, float]]  # (what, seconds)


def read_run(run_dir: Path) -> RunInfo:
    config = run_dir / "config.yaml"
    return RunInfo(
        run_dir=run_dir,
        config_text=config.read_text() if config.is_file() else "",
        rows=collect_rows(run_dir),
        curves=find_curves(run_dir),
        timings=_timings(run_dir),
    )


def _model_dirs(run_dir: Path) -> list[tuple[str, Path]]:
    """Directories that hold fold{k}/metrics.json: zoo models (pipeline or zoo run, each
    partition of a repeated one), and distillation's students and final models."""
    out = []
    for parent, prefix in ((run_dir / "zoo", ""), (run_dir, ""),
                           (run_dir / "distill" / "soft", "soft_"),
                           (run_dir / "distill" / "hard", "hard_")):
        if not parent.is_dir():
            continue
        for model_dir in sorted(p for p in parent.iterdir() if p.is_dir()):
            if any(model_dir.glob("fold*/metrics.json")):
                out.append((prefix + model_dir.name, model_dir))
            # A model trained over several fold partitions (train/repeats.py).
            for repeat_dir in sorted(model_dir.glob("repeat*")):
                if any(repeat_dir.glob("fold*/metrics.json")):
                    out.append((f"{prefix}{model_dir.name}/{repeat_dir.name}", repeat_dir))
    return out


def find_curves(run_dir: Path) -> list[Curve]:
    curves = []
    for name, model_dir in _model_dirs(run_dir):
        for metrics_file in sorted(model_dir.glob("fold*/metrics.json")):
            history = json.loads(metrics_file.read_text()).get("history") or []
            if not history:
                continue
            fold = int(metrics_file.parent.name.removeprefix("fold"))
            curves.append(Curve(
                model=name, fold=fold, epochs=[h["epoch"] for h in history],
                train_loss=[h["train_loss"] for h in history],
                valid_bce=[h["bce"] for h in history],
                valid_gap=[h["gap"] for h in history],
            ))
    return curves


def _timings(run_dir: Path) -> list[tuple[str, float]]:
    """Training seconds of each model (its folds added up), the stages that record
    theirs, and the run's total when the pipeline finished."""
    out: list[tuple[str, float]] = []
    stages = run_dir / "stages"
    if stages.is_dir():
        for path in sorted(stages.glob("*.json")):
            seconds = json.loads(path.read_text()).get("seconds")
            if isinstance(seconds, (int, float)):
                out.append((f"stage {path.stem}", float(seconds)))
    for name, model_dir in _model_dirs(run_dir):
        total = 0.0
        for metrics_file in model_dir.glob("fold*/metrics.json"):
            total += json.loads(metrics_file.read_text()).get("result", {}).get("seconds", 0.0)
        out.append((f"training {name} (all folds)", total))
    summary = run_dir / "metrics.json"
    if summary.is_file():
        seconds = json.loads(summary.read_text()).get("seconds")
        if isinstance(seconds, (int, float)):
            out.append(("whole run (last invocation)", float(seconds)))
    return out
