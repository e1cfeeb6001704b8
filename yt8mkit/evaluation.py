"""Scoring a Kaggle submission against labelled videos (a store, or TFRecords that are
ingested into a temporary store first)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from yt8mkit.data.ingest import IngestConfig, ingest
from yt8mkit.data.store import Store
from yt8mkit.data.submission import align_to_ids, read_submission
from yt8mkit.errors import Yt8mError
from yt8mkit.metrics import Labels, Metrics, evaluate


def store_labels(store: Store, rows: np.ndarray | None = None) -> Labels:
    """The store's labels (of some rows) as the metrics' CSR type."""
    indptr = np.asarray(store.labels_indptr)
    indices = np.asarray(store.labels_indices)
    labels = Labels(indptr, indices, store.num_classes)
    return labels if rows is None else labels.take(np.asarray(rows))


def evaluate_submission(submission_path: str | os.PathLike[str], labels: Store) -> Metrics:
    """GAP@20, Hit@1, PERR and MAP of a submission over every video of ``labels``; a
    labelled video missing from the submission counts as predicting nothing."""
    if not labels.has_labels:
        raise Yt8mError(f"{labels.path}: these videos carry no labels to evaluate against")
    submission = read_submission(submission_path, num_classes=labels.num_classes)
    aligned = align_to_ids(submission, labels.ids())
    # Unlabelled videos (a mixed store) have no truth to score against.
    keep = labels.scored_rows()
    return evaluate(aligned.indices[keep], aligned.scores[keep], store_labels(labels, keep))


def evaluate_against(
    submission_path: str | os.PathLike[str], source: Sequence[str | os.PathLike[str]],
    num_classes: int | None = None,
) -> Metrics:
    """As :func:`evaluate_submission`, with the labels given as a store or TFRecords."""
    with labels_store(source, num_classes) as store:
        return evaluate_submission(submission_path, store)


@contextmanager
def labels_store(source: Sequence[str | os.PathLike[str]],
                 num_classes: int | None = None) -> Iterator[Store]:
    """The store named, or TFRecords ingested into a temporary store for the duration."""
    if len(source) == 1 and Store.is_store(source[0]):
        yield Store(source[0])
        return
    with tempfile.TemporaryDirectory(prefix="yt8m-labels-") as tmp:
        store_dir = Path(tmp) / "labels"
        ingest(source, store_dir, IngestConfig(workers=1, num_classes=num_classes))
        yield Store(store_dir)
