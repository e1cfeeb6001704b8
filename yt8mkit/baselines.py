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
        indptr = np.asarray(store.labels_indptr)
        rows = np.asarray(rows)
        gathered = [store.labels_indices[indptr[r] : indptr[r + 1]] for r in rows]
        labels = np.concatenate(gathered) if gathered else np.zeros(0, np.int32)
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
