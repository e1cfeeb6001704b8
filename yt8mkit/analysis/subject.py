"""Which prediction set of a run the error analysis looks at, and against which labels.

A run holds many prediction sets: every first-level model's, the ensemble's and the
distilled final models', each out-of-fold over the training store and, when there is
test data, over the test store. The paper analyses the final (distilled) model; so does
the report by default, on the labelled test videos when there are some (the honest
figure for a model trained on soft labels, see distill.run) and out-of-fold otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError

Split = Literal["test", "oof"]


@dataclass
class Subject:
    name: str  # final_soft, final_hard, ensemble, or a first-level model's name
    split: Split
    predictions: Predictions
    store: Store  # the labels the predictions are scored against

    def describe(self) -> str:
        where = ("the labelled test videos" if self.split == "test"
                 else "the training videos, out of fold")
        return f"{self.name} on {where} ({self.store.num_videos:,} videos)"


def _model_dirs(run_dir: Path) -> dict[str, Path]:
    """Every model directory of the run that can hold oof/ or test/, preferred first."""
    dirs: dict[str, Path] = {}
    exported = _exported_labels(run_dir)
    kinds = ["soft", "hard"] if exported != "hard" else ["hard", "soft"]
    for kind in kinds:
        dirs[f"final_{kind}"] = run_dir / "distill" / kind / "final"
    dirs["ensemble"] = run_dir / "ensemble"
    zoo = run_dir / "zoo" if (run_dir / "zoo").is_dir() else run_dir
    ranked = []
    for metrics_file in zoo.glob("*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        if "model" in metrics:
            ranked.append((-(metrics.get("oof_gap") or -1.0), metrics_file.parent.name))
    for _, name in sorted(ranked):
        dirs.setdefault(name, zoo / name)
    return dirs


def _exported_labels(run_dir: Path) -> str | None:
    path = run_dir / "final_model.json"
    if path.is_file():
        return json.loads(path.read_text()).get("labels")
    return None


def model_dir(run_dir: Path, name: str) -> Path:
    """The directory of a model :func:`available` named."""
    return _model_dirs(run_dir)[name]


def available(run_dir: Path) -> list[tuple[str, Split]]:
    """(model, split) pairs the run has predictions and labels for."""
    test_store = run_dir / "test_store"
    test_labelled = Store.is_store(test_store) and Store(test_store).has_labels
    out: list[tuple[str, Split]] = []
    for name, path in _model_dirs(run_dir).items():
        if test_labelled and Predictions.exists(path / "test"):
            out.append((name, "test"))
        if Predictions.exists(path / "oof"):
            out.append((name, "oof"))
    return out


def choose_subject(run_dir: Path, model: str | None = None,
                   split: Split | None = None) -> Subject:
    """The named (model, split), or the first available in the order of preference."""
    if not Store.is_store(run_dir / "store"):
        raise Yt8mError(f"{run_dir}: not a run directory (no store/)")
    choices = available(run_dir)
    if not choices:
        raise Yt8mError(f"{run_dir}: no prediction set to analyse (no model has finished)")
    wanted = [(m, s) for m, s in choices
              if (model is None or m == model) and (split is None or s == split)]
    if not wanted:
        names = ", ".join(f"{m} ({s})" for m, s in choices)
        raise Yt8mError(f"{run_dir}: no predictions for model {model or 'any'}, split "
                        f"{split or 'any'}; the run has: {names}")
    name, chosen = wanted[0]
    path = _model_dirs(run_dir)[name] / chosen
    store = Store(run_dir / ("test_store" if chosen == "test" else "store"))
    return Subject(name=name, split=chosen, predictions=Predictions(path), store=store)
