"""Hit@1, PERR and MAP as the YouTube-8M starter defines them, plus ``evaluate``.

All work from sparse top-K predictions ordered by the tie rule (score descending,
lower class first; see ``topk``). Definitions, with their edge cases as in the
starter's ``eval_util``:

- Hit@1: the fraction of videos whose best-scored class is a label (no score
  threshold). A video without predictions scores 0.
- PERR: for a video with L labels, the fraction of its L best-scored classes that
  are labels AND have a score > 0; a video without labels scores 0 and still counts.
  From top-K predictions this is exact when every video has at most K labels
  (beyond K, classes outside the top K are missing and the value is a lower bound).
- MAP: the mean over ALL classes of each class's AP over the pooled top-k (k=20)
  predictions of every video, divided by the class's number of positives; a class
  without positives or without predictions has AP 0. Ties within a class are broken
  pessimistically like GAP's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from yt8mkit.metrics.gap import average_precision
from yt8mkit.metrics.topk import Labels, as_labels, check_k, order_sparse, top_k


@dataclass(frozen=True)
class Metrics:
    gap: float
    hit_at_1: float
    perr: float
    map: float
    num_videos: int
    k: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def hit_at_1(hits: np.ndarray) -> float:
    """Hit@1 from the (n, K) hit matrix of ordered predictions."""
    if hits.shape[0] == 0:
        return 0.0
    return float(np.mean(hits[:, 0])) if hits.shape[1] else 0.0


def perr(hits: np.ndarray, scores: np.ndarray, num_labels: np.ndarray) -> float:
    """PERR from the (n, K) hit matrix and scores of ordered predictions and the
    number of labels of each video."""
    n, width = hits.shape
    if n == 0:
        return 0.0
    within = np.arange(width)[None, :] < num_labels[:, None]
    found = np.count_nonzero(hits & within & (scores > 0), axis=1)
    # A video without labels contributes 0 (the starter divides 0 by C).
    return float(np.sum(found / np.maximum(num_labels, 1)) / n)


def mean_average_precision(
    indices: np.ndarray, scores: np.ndarray, hits: np.ndarray, labels: Labels
) -> float:
    """MAP over all classes from the ordered top-k predictions (n, k) and their hits."""
    num_classes = labels.num_classes
    valid = indices >= 0
    cls = indices[valid].astype(np.int64)
    score = scores[valid].astype(np.float64)
    pos = hits[valid]
    # Class ascending, then score descending, negatives before positives on ties.
    order = np.lexsort((pos, -score, cls))
    cls, pos = cls[order], pos[order]
    start = np.searchsorted(cls, np.arange(num_classes))
    rank = np.arange(len(cls)) - start[cls] + 1
    cum = np.cumsum(pos)
    before = np.concatenate([[0], cum])[start]
    found = cum - before[cls]
    precision_sum = np.bincount(cls[pos], weights=(found[pos] / rank[pos]), minlength=num_classes)
    positives = np.bincount(labels.indices, minlength=num_classes)
    ap = np.divide(precision_sum, positives, out=np.zeros(num_classes), where=positives > 0)
    return float(np.mean(ap))


def evaluate(
    indices: np.ndarray, scores: np.ndarray, labels: Labels | np.ndarray, k: int = 20
) -> Metrics:
    """All metrics from sparse top-K predictions ((n, K) class indices and scores,
    rows aligned with ``labels``; negative indices are padding). GAP and MAP use the
    best k of each row; Hit@1 and PERR use all K columns."""
    k = check_k(k)
    indices, scores = order_sparse(indices, scores)
    n = indices.shape[0]
    if n == 0:
        raise ValueError("no videos to evaluate")
    labels = as_labels(labels, n, None)
    hits = labels.hits(indices)
    kk = min(k, indices.shape[1])
    top_i, top_s, top_h = indices[:, :kk], scores[:, :kk], hits[:, :kk]
    return Metrics(
        gap=average_precision(top_s[top_i >= 0], top_s[top_h], len(labels.indices)),
        hit_at_1=hit_at_1(hits),
        perr=perr(hits, scores, labels.counts()),
        map=mean_average_precision(top_i, top_s, top_h, labels),
        num_videos=n,
        k=k,
    )


def evaluate_dense(scores: np.ndarray, labels: Labels | np.ndarray, k: int = 20) -> Metrics:
    """All metrics from dense (n, C) scores; PERR is exact for any label count."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d, got shape {scores.shape}")
    labels = as_labels(labels, scores.shape[0], scores.shape[1])
    most = int(labels.counts().max(initial=0))
    indices, values = top_k(scores, max(check_k(k), most, 1))
    return evaluate(indices, values, labels, k)
