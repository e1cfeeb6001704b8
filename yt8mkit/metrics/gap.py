"""Global average precision at k (GAP@k), the YouTube-8M challenge metric.

Definition (the starter's ``eval_util.calculate_gap``): take the top k predictions of
every video (zero scores included), pool all their (score, is_positive) pairs, rank
them by score, and sum precision@i over the positive positions; divide by the number
of ALL true labels of all videos, including those no top k retrieved.

Ties. The starter shuffles the pooled pairs with a fixed seed and then sorts them
stably, so its value under tied scores depends on the input order. Here ties are
broken pessimistically: among equal scores, negatives rank before positives. This
depends only on the multiset of pairs, so any split into chunks, any video order and
the fast and reference paths give the same value. Within a video, the top k are
chosen with the lower class index first among equal scores (see ``topk``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from yt8mkit.metrics.topk import (
    BLOCK_ROWS,
    NATIVE_BLOCK_ROWS,
    Backend,
    Labels,
    _native_topk,
    as_labels,
    check_k,
    default_workers,
    map_blocks,
    map_parts,
    native_top_k_block,
    order_sparse,
    select_block,
    use_native,
)

BlockFn = Callable[[int, int], tuple[np.ndarray, np.ndarray]]

# Below this many retrieved scores a part, average_precision stays on one thread.
PARALLEL_AP_MIN = 1 << 19


def _count_at_least(retrieved: np.ndarray, pos_sorted: np.ndarray) -> np.ndarray:
    """For each (ascending) positive score, how many of ``retrieved`` are >= it."""
    ranked = np.sort(retrieved)
    if _native_topk is not None and ranked.dtype == pos_sorted.dtype == np.float32:
        # One merge of the two sorted arrays: a binary search a positive costs more.
        counts = np.empty(len(pos_sorted), np.int64)
        _native_topk.count_at_least(ranked, pos_sorted, counts)
        return counts
    return len(ranked) - np.searchsorted(ranked, pos_sorted, side="left")


def average_precision(retrieved: np.ndarray, positives: np.ndarray, num_positives: int) -> float:
    """AP of a ranked list under the pessimistic tie rule.

    ``retrieved`` holds the scores of every retrieved item (positive or not), in any
    order; ``positives`` the scores of the retrieved positives (a sub-multiset);
    ``num_positives`` the number of positives in all, retrieved or not.
    """
    if num_positives <= 0 or len(retrieved) == 0:
        return 0.0
    pos = np.sort(positives)
    # For the positive j-th from the top (positives in descending order), its rank is
    # j plus the number of negatives scored at least as high: equal-score negatives
    # go first, so no sort of the pairs themselves is needed. Counts over parts of
    # the retrieved scores add up, so large inputs are sorted and counted in parts on
    # threads (numpy's sort and search release the GIL).
    parts = max(1, min(default_workers(), len(retrieved) // PARALLEL_AP_MIN))
    at_least = sum(
        map_parts(lambda part: _count_at_least(part, pos), np.array_split(retrieved, parts))
    )
    # Positives at least as high as each: all from the first of its run of equal
    # scores on (the sorted array makes that a running maximum, not a search).
    first = np.arange(len(pos))
    if len(pos) > 1:
        first[1:][pos[1:] == pos[:-1]] = 0
        np.maximum.accumulate(first, out=first)
    pos_at_least = len(pos) - first
    j = np.arange(len(pos), 0, -1, dtype=np.float64)
    rank = j + (at_least - pos_at_least)
    return float(np.sum(j / rank) / num_positives)


class GapAccumulator:
    """Exact streaming GAP@k: add predictions chunk by chunk, read ``gap()`` at the end.

    Only the top k (score, is_positive) information of each video is kept (n * k
    scores), never the dense predictions. ``backend`` picks the top-k path of dense
    scores (see ``topk``); the value is the same on either.
    """

    def __init__(self, k: int = 20, backend: Backend = "auto") -> None:
        self.k = check_k(k)
        self.backend = backend
        self._retrieved: list[np.ndarray] = []
        self._positives: list[np.ndarray] = []
        self.num_positives = 0
        self.num_videos = 0

    def add_dense(self, probs: np.ndarray, labels: Labels | np.ndarray) -> None:
        """Dense (n, C) scores of n videos and their labels (``Labels`` or dense 0/1)."""
        probs = np.asarray(probs)
        if probs.ndim != 2:
            raise ValueError(f"scores must be 2-d, got shape {probs.shape}")
        labels = as_labels(labels, probs.shape[0], probs.shape[1])
        if probs.shape[1] == 0:
            raise ValueError("scores have no classes")
        if use_native(probs.dtype, self.backend):
            run, rows = self._native_blocks(probs, labels), NATIVE_BLOCK_ROWS
        else:
            run, rows = self._numpy_blocks(probs, labels), BLOCK_ROWS
        for retrieved, positives in map_blocks(run, probs.shape[0], rows=rows):
            self._retrieved.append(retrieved)
            self._positives.append(positives)
        self.num_positives += len(labels.indices)
        self.num_videos += probs.shape[0]

    def _numpy_blocks(self, probs: np.ndarray, labels: Labels) -> BlockFn:
        """(retrieved, retrieved positives) of rows start:stop, by ``select_block``."""

        def run(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            block = np.ascontiguousarray(probs[start:stop])
            if block.dtype.kind != "f":
                block = block.astype(np.float32)
            sel = select_block(block, self.k)
            part = labels.slice(start, stop)
            rows, cols = part.row_ids(), part.indices.astype(np.int64)
            vals = block[rows, cols]
            return sel.vals, vals[sel.contains(rows, cols, vals)]

        return run

    def _native_blocks(self, probs: np.ndarray, labels: Labels) -> BlockFn:
        """The same as ``_numpy_blocks``, by the C kernel."""
        k = min(self.k, probs.shape[1])
        indptr = labels.indptr
        classes = np.ascontiguousarray(labels.indices, np.int32)
        num_classes = probs.shape[1]

        def run(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            indices, values = native_top_k_block(probs[start:stop], k)
            hits = np.empty(indices.shape, bool)
            # The block's rows of the CSR, offsets into all of ``classes``.
            rows = indptr[start : stop + 1]
            assert _native_topk is not None
            _native_topk.label_hits(indices, stop - start, k, rows, classes, num_classes, hits)
            return values.ravel(), values[hits]

        return run

    def add_top_k(
        self, indices: np.ndarray, scores: np.ndarray, labels: Labels | np.ndarray
    ) -> None:
        """Sparse top-K predictions (negative index = no prediction) of n videos; the
        best k of each row under the tie rule are used."""
        indices, scores = order_sparse(indices, scores, self.k)
        labels = as_labels(labels, indices.shape[0], None)
        valid = indices >= 0
        hits = labels.hits(indices)
        self._retrieved.append(scores[valid])
        self._positives.append(scores[hits])
        self.num_positives += len(labels.indices)
        self.num_videos += indices.shape[0]

    def gap(self) -> float:
        if not self._retrieved:
            return 0.0
        retrieved = np.concatenate(self._retrieved)
        positives = np.concatenate(self._positives)
        # Keep the compacted arrays so that repeated calls do not concatenate again.
        self._retrieved, self._positives = [retrieved], [positives]
        return average_precision(retrieved, positives, self.num_positives)


def gap_at_k(
    scores_dense: np.ndarray,
    labels: Labels | np.ndarray,
    k: int = 20,
    backend: Backend = "auto",
) -> float:
    """GAP@k of dense (n, C) scores against dense 0/1 labels or ``Labels``."""
    acc = GapAccumulator(k, backend)
    acc.add_dense(scores_dense, labels)
    return acc.gap()


def gap_from_top_k(
    indices: np.ndarray, scores: np.ndarray, labels: Labels | np.ndarray, k: int = 20
) -> float:
    """GAP@k of sparse top-K predictions ((n, K) class indices and scores, K >= k for
    the exact value; negative indices are padding)."""
    acc = GapAccumulator(k)
    acc.add_top_k(indices, scores, labels)
    return acc.gap()
