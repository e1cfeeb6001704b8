"""Per-label outcome counts over each video's top predictions, as the paper's section 4
("Error analysis") defines them, and per-label average precision.

Over the top ``k`` (20) predicted labels of a video:

- a *true positive* is a positive label scored higher than every negative label;
- a *false positive* is a negative label scored higher than at least one positive;
- a *false negative* is a positive label scored lower than at least one negative.

Comparisons are strict, as in the paper: a positive tied with the highest negative is
neither a true positive nor a false negative, and a negative tied with the lowest
positive is not a false positive. A positive label missing from the top ``k`` is scored
below every label in it, so it is a false negative whenever the top ``k`` holds a
negative, and it makes every negative in the top ``k`` a false positive. (When all ``k``
are positive, a video with more than ``k`` labels, nothing in the top ``k`` outranks the
missing ones and they are not counted.) Negatives outside the top ``k`` are not counted.

Everything is computed chunk by chunk from sparse top-K prediction sets and the store's
CSR labels: memory is a chunk's (videos × classes) masks plus, for AP, the top-``k``
(label, score, hit) triples of every video (9 bytes each: about 1 GB for the 5.6 M
videos of the whole dataset, where a dense score matrix would be 87 GB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store


@dataclass
class LabelOutcomes:
    """Counts and scores of every class, each array (num_classes,)."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    positives: np.ndarray  # positive (video, label) pairs among the videos analysed
    ap: np.ndarray  # average precision over the pooled top-k; NaN without positives
    num_videos: int
    k: int

    @property
    def num_classes(self) -> int:
        return len(self.tp)

    def precision(self) -> np.ndarray:
        """TP / (TP + FP); NaN where the label was never among those counts."""
        return _ratio(self.tp, self.tp + self.fp)

    def recall(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fn)

    def f1(self) -> np.ndarray:
        """2TP / (2TP + FP + FN), the harmonic mean of precision and recall written so
        that it is defined (0) where one of them is not but the label has outcomes."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def seen(self) -> np.ndarray:
        """Labels with at least one outcome: those the figures and rankings cover."""
        return (self.tp + self.fp + self.fn) > 0


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def chunk_outcomes(
    indices: np.ndarray, scores: np.ndarray, labels_indptr: np.ndarray,
    labels_indices: np.ndarray, num_classes: int, k: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn, hit) of one chunk of videos.

    ``indices``/``scores``: (n, K) top-K of each video, highest first; ``labels_indptr``
    (n+1,) and ``labels_indices``: the chunk's labels as CSR (indptr starting at 0).
    ``hit`` (n, k) says which of the top-k entries are positive, for the AP pass.
    Entries with index -1 (a submission's padding) are no prediction.
    """
    n = indices.shape[0]
    k = min(k, indices.shape[1])
    idx = np.asarray(indices[:, :k], np.int64)
    s = np.asarray(scores[:, :k], np.float64)
    # Index -1 pads a submission's short lines: no prediction there.
    valid = idx >= 0
    idx = np.where(valid, idx, 0)
    counts = np.diff(labels_indptr)
    label_rows = np.repeat(np.arange(n), counts)
    truth = np.zeros((n, num_classes), bool)
    truth[label_rows, labels_indices] = True
    hit = truth[np.arange(n)[:, None], idx] & valid
    negative = valid & ~hit

    neg_max = np.where(negative, s, -np.inf).max(axis=1, initial=-np.inf)
    in_top = np.zeros((n, num_classes), bool)
    in_top[np.nonzero(valid)[0], idx[valid]] = True
    missing = ~in_top[label_rows, labels_indices]  # positive (video, label) pairs not in top k
    missing_per_video = np.bincount(label_rows[missing], minlength=n)
    # The lowest positive of each video: -inf when one is below the top k, +inf (so no
    # false positive) when the video has no positive at all.
    pos_min = np.where(hit, s, np.inf).min(axis=1, initial=np.inf)
    pos_min[missing_per_video > 0] = -np.inf

    tp_mask = hit & (s > neg_max[:, None])
    fn_mask = hit & (s < neg_max[:, None])
    fp_mask = negative & (s > pos_min[:, None])
    has_negative = np.asarray(negative.any(axis=1))
    missed = missing & has_negative[label_rows]

    tp = np.bincount(idx[tp_mask], minlength=num_classes)
    fp = np.bincount(idx[fp_mask], minlength=num_classes)
    fn = (np.bincount(idx[fn_mask], minlength=num_classes)
          + np.bincount(np.asarray(labels_indices)[missed], minlength=num_classes))
    return tp, fp, fn, hit


@dataclass
class OutcomeAccumulator:
    """Adds chunks of videos; :meth:`result` gives the per-label outcomes and AP."""

    num_classes: int
    k: int = 20
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    positives: np.ndarray = field(init=False)
    num_videos: int = 0
    _entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __post_init__(self) -> None:
        zeros = np.zeros(self.num_classes, np.int64)
        self.tp, self.fp, self.fn, self.positives = (zeros.copy() for _ in range(4))

    def add(self, indices: np.ndarray, scores: np.ndarray, labels_indptr: np.ndarray,
            labels_indices: np.ndarray) -> None:
        tp, fp, fn, hit = chunk_outcomes(indices, scores, labels_indptr, labels_indices,
                                         self.num_classes, self.k)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.positives += np.bincount(labels_indices, minlength=self.num_classes)
        self.num_videos += indices.shape[0]
        k = hit.shape[1]
        top = np.asarray(indices[:, :k], np.int32).ravel()
        valid = top >= 0
        self._entries.append((top[valid], np.asarray(scores[:, :k], np.float32).ravel()[valid],
                              hit.ravel()[valid]))

    def result(self) -> LabelOutcomes:
        return LabelOutcomes(tp=self.tp.copy(), fp=self.fp.copy(), fn=self.fn.copy(),
                             positives=self.positives.copy(), ap=self._average_precision(),
                             num_videos=self.num_videos, k=self.k)

    def _average_precision(self) -> np.ndarray:
        """AP of each label over the pooled top-k entries of all videos, ranked by score;
        positives never in a top k count as never retrieved (the official MAP@k)."""
        ap = np.full(self.num_classes, np.nan)
        if not self._entries:
            return ap
        labels = np.concatenate([e[0] for e in self._entries])
        scores = np.concatenate([e[1] for e in self._entries])
        hits = np.concatenate([e[2] for e in self._entries])
        order = np.lexsort((-scores, labels))  # by label, then score descending
        labels, hits = labels[order], hits[order]
        starts = np.searchsorted(labels, np.arange(self.num_classes))
        rank = np.arange(len(labels)) - starts[labels] + 1
        cum_hits = np.cumsum(hits)
        before = np.concatenate([[0], cum_hits])[starts]  # hits of earlier labels
        precision_at_hit = (cum_hits - before[labels])[hits] / rank[hits]
        sums = np.bincount(labels[hits], weights=precision_at_hit, minlength=self.num_classes)
        has = self.positives > 0
        ap[has] = sums[has] / self.positives[has]
        return ap


def analyse(predictions: Predictions, store: Store, k: int = 20,
            chunk_videos: int = 4096) -> LabelOutcomes:
    """Outcomes of a prediction set against the labels of the store it is aligned with."""
    if len(predictions) != store.num_videos:
        raise ValueError(f"{predictions.path}: {len(predictions):,} videos, the store "
                         f"{store.path} {store.num_videos:,}")
    return analyse_arrays(predictions.indices, predictions.scores, store,
                          predictions.meta.num_classes, k, chunk_videos)


def analyse_arrays(indices: np.ndarray, scores: np.ndarray, store: Store,
                   num_classes: int | None = None, k: int = 20,
                   chunk_videos: int = 4096) -> LabelOutcomes:
    """As :func:`analyse`, from (n, K) arrays (memory maps or an aligned submission, whose
    index -1 pads short lines) in the store's video order; unlabelled videos (no
    ``labels`` key) are left out."""
    num_classes = max(store.num_classes, num_classes or 0)
    accumulator = OutcomeAccumulator(num_classes, k)
    indptr = np.asarray(store.labels_indptr)
    labelled = np.asarray(store.labelled)
    for start in range(0, store.num_videos, chunk_videos):
        rows = np.arange(start, min(start + chunk_videos, store.num_videos))
        rows = rows[labelled[rows]]
        if not len(rows):
            continue
        starts = indptr[rows]
        counts = indptr[rows + 1] - starts
        local_indptr = np.concatenate([[0], np.cumsum(counts)])
        # Each row's labels are a contiguous run of the store's CSR: one gather, no loop.
        gather = np.repeat(starts - local_indptr[:-1], counts) + np.arange(local_indptr[-1])
        labels = np.asarray(store.labels_indices[gather], np.int64)
        accumulator.add(np.asarray(indices[rows]), np.asarray(scores[rows]), local_indptr,
                        labels)
    return accumulator.result()
