"""Where the parts of a run directory lie, for the second-level commands (`yt8m stack`,
`distill`, `export`) that continue a run made by `yt8m pipeline` or `yt8m zoo`.

A pipeline run holds its config (``config.yaml``) and its models under ``zoo/``; a zoo
run holds the models at its top level and has no second-level settings, so the typed
defaults apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from yt8mkit.data.store import Store
from yt8mkit.distill.config import DistillConfig
from yt8mkit.ensemble.config import StackConfig
from yt8mkit.errors import Yt8mError
from yt8mkit.export.config import ExportConfig
from yt8mkit.pipeline.config import PipelineConfig
from yt8mkit.rundir import write_atomic


@dataclass
class RunLayout:
    run_dir: Path
    store: Store
    test_store: Store | None
    zoo_dir: Path
    # First-level models whose every fold is complete: their predictions feed the stack.
    models: list[str]
    stack: StackConfig
    distill: DistillConfig
    export: ExportConfig

    @property
    def ensemble_dir(self) -> Path:
        return self.run_dir / "ensemble"

    @property
    def distill_dir(self) -> Path:
        return self.run_dir / "distill"

    def prediction_dirs(self, kind: str) -> dict[str, Path]:
        return {m: self.zoo_dir / m / kind for m in self.models}


def _pipeline_config(run_dir: Path) -> PipelineConfig | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    if "zoo" not in data or "data" not in data:
        return None
    return PipelineConfig.from_record(path)


def _complete_models(zoo_dir: Path) -> list[str]:
    """Models with a summary metrics.json (written once all folds are done) and
    out-of-fold predictions."""
    models = []
    for metrics_file in sorted(zoo_dir.glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        if "model" in metrics and (metrics_file.parent / "oof").is_dir():
            models.append(metrics_file.parent.name)
    return models


def open_run(run_dir: Path) -> RunLayout:
    """The layout of ``run_dir``; a clear error when it is not a run of this tool."""
    if not run_dir.is_dir():
        raise Yt8mError(f"{run_dir}: no such run directory")
    if not Store.is_store(run_dir / "store"):
        raise Yt8mError(f"{run_dir}: no training store ({run_dir / 'store'}); "
                        "run `yt8m pipeline` or `yt8m zoo` into it first")
    config = _pipeline_config(run_dir)
    zoo_dir = run_dir / "zoo" if config is not None else run_dir
    models = _complete_models(zoo_dir)
    if config is not None:
        # Only the config's models: a stray directory must not join the ensemble.
        models = [m for m in models if m in config.zoo.member_names()]
    if not models:
        raise Yt8mError(f"{zoo_dir}: no first-level model with all its folds complete")
    test_path = run_dir / "test_store"
    return RunLayout(
        run_dir=run_dir,
        store=Store(run_dir / "store"),
        test_store=Store(test_path) if Store.is_store(test_path) else None,
        zoo_dir=zoo_dir,
        models=models,
        stack=(config.stack if config and config.stack else StackConfig()),
        distill=(config.distill if config and config.distill else DistillConfig()),
        export=(config.export if config and config.export else ExportConfig()),
    )


def write_members(ensemble_dir: Path, models: list[str]) -> None:
    """The first-level models the ensemble stacked (``yt8m table``'s "Ens." column)."""
    write_atomic(ensemble_dir / "members.json", json.dumps(models))
