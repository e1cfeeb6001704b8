"""Candidate labels of the second level: per video, the union of every first-level model's
top ``top_n`` labels (the paper's "top-30 categories"). LightGBM then only ever scores these
(video, label) pairs, which keeps its training set at tens of rows a video instead of
thousands, at the cost of never recovering a label that no model ranked high.

Everything is vectorised over a block of videos: a (video, label) pair is one integer key
``row * num_classes + label``, so a union is ``np.unique`` over keys, and the keys come out
grouped by video and sorted by label within each video.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pair_keys(indices: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 keys ``row * num_classes + label`` of a (rows, K) block of label ids."""
    rows = np.arange(indices.shape[0], dtype=np.int64)[:, None]
    return rows * num_classes + np.asarray(indices, np.int64)


def csr_from_keys(
    keys: np.ndarray, num_rows: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indptr (num_rows+1,) int64, labels int32) from sorted unique pair keys."""
    rows = keys // num_classes
    indptr = np.zeros(num_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=num_rows), out=indptr[1:])
    return indptr, (keys % num_classes).astype(np.int32)


def candidate_labels(
    top_indices: Sequence[np.ndarray], top_n: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of a block of videos as CSR ``(indptr, labels)``, labels ascending within
    a video. ``top_indices[m]`` is model m's (videos, K_m) label ids, best first; a model
    with K_m < top_n contributes all it has."""
    if not top_indices:
        raise ValueError("candidate_labels needs at least one model's predictions")
    num_rows = top_indices[0].shape[0]
    for block in top_indices:
        if block.shape[0] != num_rows:
            raise ValueError(
                f"every model must cover the same videos: {block.shape[0]} rows vs {num_rows}"
            )
    stacked = np.concatenate([np.asarray(b[:, :top_n]) for b in top_indices], axis=1)
    keys = np.unique(pair_keys(stacked, num_classes))
    return csr_from_keys(keys, num_rows, num_classes)


def expand_rows(indptr: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Positions of every candidate of ``videos`` (in their order) in a CSR over videos."""
    videos = np.asarray(videos, np.int64)
    starts = indptr[videos]
    counts = indptr[videos + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    # Each candidate's position = its video's start + its offset within that video.
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets


def rows_of_candidates(indptr: np.ndarray) -> np.ndarray:
    """The block row (video) of each candidate of a CSR."""
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
