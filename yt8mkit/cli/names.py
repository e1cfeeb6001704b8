"""The `--vocabulary` option the commands share, and how they show a label with it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from yt8mkit.data.vocabulary import Vocabulary

VocabularyOption = Annotated[Path | None, typer.Option(
    "--vocabulary",
    help="Label vocabulary CSV (the official vocabulary.csv: Index and Name columns, "
         "Vertical1 optional) to show label names.")]


def load(path: Path | None) -> Vocabulary | None:
    if path is None:
        return None
    from yt8mkit.data.vocabulary import load_vocabulary

    return load_vocabulary(path)


def label(index: int, vocabulary: Vocabulary | None) -> str:
    return str(int(index)) if vocabulary is None else vocabulary.label(index)
