"""Where every benchmark writes its results: JSON for the details, a markdown table for
the README, the table also printed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, report: dict, header: Sequence[str],
                  rows: Sequence[Sequence[str]], footer: Sequence[str] = ()) -> None:
    """``results/{name}.json`` from ``report``, ``results/{name}.md`` from the rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += list(footer)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
