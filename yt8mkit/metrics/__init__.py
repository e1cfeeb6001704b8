"""Evaluation metrics of the YouTube-8M challenge: GAP@k (exact and fast), Hit@1, PERR
and MAP, computed as the official starter code defines them.

Tie rule, everywhere: within a video, equal scores rank the lower class index first;
in a pooled ranking (GAP, per-class AP for MAP), equal scores rank negatives before
positives (pessimistic). See ``gap`` and ``topk`` for why.
"""

from yt8mkit.metrics.gap import GapAccumulator, average_precision, gap_at_k, gap_from_top_k
from yt8mkit.metrics.ranking import (
    Metrics,
    evaluate,
    evaluate_dense,
    hit_at_1,
    mean_average_precision,
    perr,
)
from yt8mkit.metrics.topk import Labels, order_sparse, top_k

__all__ = [
    "GapAccumulator",
    "Labels",
    "Metrics",
    "average_precision",
    "evaluate",
    "evaluate_dense",
    "gap_at_k",
    "gap_from_top_k",
    "hit_at_1",
    "mean_average_precision",
    "order_sparse",
    "perr",
    "top_k",
]
