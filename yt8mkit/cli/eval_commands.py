"""`yt8m evaluate`: score a Kaggle submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from yt8mkit.cli.app import app, fail
from yt8mkit.cli.progress import console
from yt8mkit.errors import Yt8mError


@app.command()
def evaluate(
    submission: Annotated[Path, typer.Argument(help="Kaggle CSV: VideoId,LabelConfidencePairs.")],
    labels: Annotated[
        list[str], typer.Option("--labels", help="Labelled store, or TFRecord files/folders.")
    ],
    num_classes: Annotated[
        int | None, typer.Option(help="Class count of TFRecord labels (default: from data).")
    ] = None,
) -> None:
    """GAP@20, Hit@1, PERR and MAP of a submission, as the official starter computes them."""
    from yt8mkit.evaluation import evaluate_against

    try:
        metrics = evaluate_against(submission, labels, num_classes)
    except (Yt8mError, ValueError) as err:
        raise fail(err) from None
    table = Table(title=f"{submission}: {metrics.num_videos:,} labelled videos")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(f"GAP@{metrics.k}", f"{metrics.gap:.5f}")
    table.add_row("Hit@1", f"{metrics.hit_at_1:.5f}")
    table.add_row("PERR", f"{metrics.perr:.5f}")
    table.add_row("MAP", f"{metrics.map:.5f}")
    console.print(table)
