"""The label-frequency baseline: every video gets the training set's most frequent labels,
scored by their frequency. The floor any model must clear, and the demo's first model."""

from __future__ import annotations

import numpy as np

from yt8mkit.data.store import Store


def frequency_prior(store: Store, rows: np.ndarray | None = None) -> np.ndarray:
    """Fraction of (the given) videos that carry each class, float32 (num_classes,)."""
    if rows is None:
        counts = store.label_counts()
        total = store.num_videos - store.meta.num_unlabelled
    else:
        indptr = np.asarray(store.labels_indptr, np.int64)
        rows = np.asarray(rows, np.int64)
        starts = indptr[rows]
        lengths = indptr[rows + 1] - starts
        # Every label position of the rows, without a Python loop over videos.
        positions = (np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
                     + np.arange(int(lengths.sum())))
        labels = np.asarray(store.labels_indices)[positions]
        counts = np.bincount(labels, minlength=store.num_classes)
        total = len(rows)
    return (counts / max(total, 1)).astype(np.float32)


def frequency_top_k(
    prior: np.ndarray, num_videos: int, k: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """The same top-k (indices, scores) for every video, as sparse predictions."""
    k = min(k, prior.size)
    top = np.argsort(-prior, kind="stable")[:k]
    return np.tile(top, (num_videos, 1)).astype(np.int32), np.tile(prior[top], (num_videos, 1))
