"""`yt8m evaluate`: score a Kaggle submission."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table

from yt8mkit.cli import names
from yt8mkit.cli.app import JsonOption, app, print_json, results
from yt8mkit.cli.names import VocabularyOption

if TYPE_CHECKING:
    from yt8mkit.analysis.outcomes import LabelOutcomes
    from yt8mkit.data.store import Store
    from yt8mkit.data.vocabulary import Vocabulary


@app.command()
def evaluate(
    submission: Annotated[Path, typer.Argument(help="Kaggle CSV: VideoId,LabelConfidencePairs.")],
    labels: Annotated[
        list[str], typer.Option("--labels", help="Labelled store, or TFRecord files/folders.")
    ],
    num_classes: Annotated[
        int | None, typer.Option(help="Class count of TFRecord labels (default: from data).")
    ] = None,
    vocabulary: VocabularyOption = None,
    worst: Annotated[int, typer.Option(
        help="With --vocabulary: how many labels with the most errors to list.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """GAP@20, Hit@1, PERR and MAP of a submission, as the official starter computes them;
    with --vocabulary also the labels it gets wrong most often, by name."""
    from yt8mkit.evaluation import evaluate_submission, labels_store

    outcomes = None
    vocab = names.load(vocabulary)
    with labels_store(labels, num_classes) as store:
        metrics = evaluate_submission(submission, store)
        if vocab is not None and not as_json:
            outcomes = _submission_outcomes(submission, store)
    if as_json:
        print_json(metrics.to_dict())
        return
    table = Table(title=f"{submission}: {metrics.num_videos:,} labelled videos")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(f"GAP@{metrics.k}", f"{metrics.gap:.5f}")
    table.add_row("Hit@1", f"{metrics.hit_at_1:.5f}")
    table.add_row("PERR", f"{metrics.perr:.5f}")
    table.add_row("MAP", f"{metrics.map:.5f}")
    results.print(table)
    if outcomes is not None and vocab is not None:
        results.print(_worst_labels(outcomes, vocab, worst))


def _submission_outcomes(submission: Path, store: Store) -> LabelOutcomes:
    from yt8mkit.analysis.outcomes import analyse_arrays
    from yt8mkit.data.submission import align_to_ids, read_submission

    aligned = align_to_ids(read_submission(submission, num_classes=store.num_classes),
                           store.ids())
    return analyse_arrays(aligned.indices, aligned.scores, store)


def _worst_labels(outcomes: LabelOutcomes, vocab: Vocabulary, n: int) -> Table:
    """The labels with the most errors (FP + FN over each video's top 20)."""
    errors = outcomes.fp + outcomes.fn
    order = np.argsort(-errors, kind="stable")[: max(n, 0)]
    table = Table(title=f"{len(order)} labels with the most errors (top {outcomes.k})")
    for column in ("label", "vertical", "positives", "TP", "FP", "FN", "F1", "AP"):
        table.add_column(column, justify="left" if column in ("label", "vertical") else "right")
    f1 = outcomes.f1()
    for c in order[errors[order] > 0]:
        table.add_row(vocab.label(c), vocab.vertical(c) or "", f"{outcomes.positives[c]:,}",
                      f"{outcomes.tp[c]:,}", f"{outcomes.fp[c]:,}", f"{outcomes.fn[c]:,}",
                      _num(f1[c]), _num(outcomes.ap[c]))
    return table


def _num(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.3f}"
