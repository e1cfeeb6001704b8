"""`yt8m report RUN`: the error analysis of a run (the paper's section 4) as one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yt8mkit.cli.app import app
from yt8mkit.cli.names import VocabularyOption
from yt8mkit.cli.progress import console
from yt8mkit.errors import Yt8mError


def write_report(run: Path, out: Path | None = None, vocabulary: Path | None = None,
                 model: str | None = None, split: str | None = None) -> Path:
    """Build the report and say where it is; shared by `report` and the end of `demo`."""
    from yt8mkit.analysis.report import build_report

    if split not in (None, "test", "oof"):
        raise Yt8mError(f"--split is 'test' or 'oof', not {split!r}")
    report = build_report(run, out, vocabulary, model, split)  # type: ignore[arg-type]
    console.print(f"report of {report.subject.describe()}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    return report.html


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory (yt8m pipeline, demo or zoo).")],
    vocabulary: VocabularyOption = None,
    out: Annotated[Path | None, typer.Option(help="Folder for report.html and the PNGs "
                                             "(default RUN/report).")] = None,
    model: Annotated[str | None, typer.Option(
        help="Model to analyse: final_soft, final_hard, ensemble or a zoo model "
             "(default: the exported final model).")] = None,
    split: Annotated[str | None, typer.Option(
        help="test (labelled test videos) or oof (training videos, out of fold); "
             "default test when labelled.")] = None,
) -> None:
    """Per-label errors (TP/FP/FN over the top 20), Figs. 4 and 5 of the paper, Table 1
    and training curves, in one self-contained HTML file."""
    path = write_report(run, out, vocabulary, model, split)
    # The path is the command's result: stdout, so that scripts can open it.
    typer.echo(str(path))
