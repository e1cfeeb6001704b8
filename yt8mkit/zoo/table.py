"""Rows of the paper's Table 1 from a run directory's metrics files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TableRow:
    name: str
    frame_level: bool
    gap: float | None
    bce: float | None
    in_ensemble: bool | None
    # GAP@20 on the test set when it is labelled (held-out videos): the honest figure for
    # models trained on soft labels, whose out-of-fold GAP is optimistic (see distill.run).
    test_gap: float | None = None
    # GAP@20 on the selection split (videos no model of either level trained on): the
    # leak-free figure that compares first- and second-level models in one run.
    selection_gap: float | None = None


def second_level_rows(ensemble: dict | None, distill: dict | None) -> list[dict]:
    """The rows of the second level from the pipeline's stage summaries: the LightGBM
    ensemble, and the final model of each kind of labels distillation trained."""
    rows: list[dict] = []
    if ensemble is not None:
        rows.append({"name": "lightgbm_ensemble", "frame_level": False,
                     "gap": ensemble["oof_gap"], "bce": None, "in_ensemble": None,
                     "test_gap": ensemble.get("test_gap"),
                     "selection_gap": ensemble.get("selection_gap")})
    for name, values in (distill or {}).items():
        if name.endswith("final"):
            rows.append({"name": f"final_model_{name.split('_')[0]}_labels",
                         "frame_level": False, "gap": values["oof_gap"],
                         "bce": values.get("oof_bce"), "in_ensemble": None,
                         "test_gap": values.get("test_gap"),
                         "selection_gap": values.get("selection_gap")})
    return rows


def collect_rows(run_dir: Path) -> list[TableRow]:
    """One row per model directory with a metrics.json, plus any second-level rows the
    ensemble and distillation stages wrote (``table_rows.json``), best GAP first."""
    ensemble_members: set[str] | None = None
    members_file = run_dir / "ensemble" / "members.json"
    if members_file.is_file():
        ensemble_members = set(json.loads(members_file.read_text()))
    rows = []
    # A zoo run holds NAME/metrics.json; a pipeline run zoo/NAME/ and baseline/.
    found = sorted(run_dir.glob("*/metrics.json")) + sorted(run_dir.glob("zoo/*/metrics.json"))
    for metrics_file in found:
        metrics = json.loads(metrics_file.read_text())
        if "model" not in metrics:  # a stage's summary, not a first-level model
            continue
        name = metrics.get("name", metrics_file.parent.name)
        rows.append(TableRow(
            name=name,
            frame_level=bool(metrics.get("frame_level", False)),
            gap=metrics.get("oof_gap"),
            bce=metrics.get("oof_bce"),
            in_ensemble=None if ensemble_members is None else name in ensemble_members,
            test_gap=metrics.get("test_gap"),
            selection_gap=metrics.get("selection_gap"),
        ))
    extra = run_dir / "table_rows.json"
    if extra.is_file():
        rows.extend(TableRow(**row) for row in json.loads(extra.read_text()))
    if any(r.selection_gap is not None for r in rows):
        # Rows without a selection figure (the label-frequency baseline) go last.
        return sorted(rows, key=lambda r: (r.selection_gap is None, -(r.selection_gap or 0.0)))
    return sorted(rows, key=lambda r: -1.0 if r.gap is None else -r.gap)
