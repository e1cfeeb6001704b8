"""Feature rows of the second level: one row per (video, candidate label).

Columns, for models m = 0..M-1 (see :class:`FeatureLayout`)::

    score_m     model m's probability of the label; NaN when the label is outside m's top K
                (LightGBM treats NaN as missing, so no separate "present" flag is needed)
    rank_m      the label's position in m's top K (0 = best), NaN when absent   [optional]
    top1_m      m's best score for this video: how confident m is about the video at all
    mean_score  mean over models, absent counted as 0: a cheap average-ensemble baseline
    num_models  how many models have the label in their top K
    label       the label id, a categorical feature (labels differ in how noisy they are)
    label_freq  the label's frequency in the *training* videos of the fold model that scores
                the row; filled per fold (NaN here), so a fold model never sees the
                frequency of videos it scores

Rows come out grouped by video, labels ascending within a video, float32.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from yt8mkit.ensemble.candidates import (
    candidate_labels,
    expand_rows,
    pair_keys,
    rows_of_candidates,
)


def _safe(name: str) -> str:
    # LightGBM refuses JSON special characters in feature names.
    return re.sub(r"[^0-9A-Za-z_]+", "_", name)


@dataclass(frozen=True)
class FeatureLayout:
    """Which columns a feature row has, in order."""

    model_names: tuple[str, ...]
    rank_features: bool = True
    context_features: bool = True

    @cached_property
    def columns(self) -> list[str]:
        cols = []
        for i, name in enumerate(self.model_names):
            cols.append(f"score_{i}_{_safe(name)}")
        if self.rank_features:
            cols += [f"rank_{i}_{_safe(n)}" for i, n in enumerate(self.model_names)]
        if self.context_features:
            cols += [f"top1_{i}_{_safe(n)}" for i, n in enumerate(self.model_names)]
            cols += ["mean_score", "num_models"]
        return [*cols, "label", "label_freq"]

    @property
    def num_features(self) -> int:
        return len(self.columns)

    @property
    def label_column(self) -> int:
        return self.num_features - 2

    @property
    def freq_column(self) -> int:
        return self.num_features - 1


@dataclass
class FeatureBlock:
    """The feature rows of a block of videos."""

    indptr: np.ndarray  # (videos + 1,) int64: rows of video i are indptr[i]:indptr[i+1]
    labels: np.ndarray  # (rows,) int32 candidate label of each row
    features: np.ndarray  # (rows, num_features) float32
    targets: np.ndarray | None  # (rows,) uint8, 1 when the label is among the video's labels

    @property
    def num_rows(self) -> int:
        return len(self.labels)


def candidate_targets(
    indptr: np.ndarray,
    labels: np.ndarray,
    label_indptr: np.ndarray,
    label_indices: np.ndarray,
    num_classes: int,
) -> np.ndarray:
    """uint8 (rows,): whether each candidate is one of its video's labels, from the labels of
    the block's videos as CSR (``label_indptr`` relative to the block)."""
    truth_rows = rows_of_candidates(np.asarray(label_indptr, np.int64))
    truth = truth_rows * num_classes + np.asarray(label_indices, np.int64)
    keys = rows_of_candidates(indptr) * num_classes + labels
    return np.isin(keys, truth).astype(np.uint8)


def build_block(
    top_lists: Sequence[tuple[np.ndarray, np.ndarray]],
    layout: FeatureLayout,
    top_n: int,
    num_classes: int,
    label_freq: np.ndarray | None = None,
    true_labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> FeatureBlock:
    """Feature rows for a block of videos.

    ``top_lists[m]`` = model m's (indices, scores) of the block, (videos, K_m), best first.
    ``label_freq`` (num_classes,) fills the frequency column (NaN if None: filled per fold
    later). ``true_labels`` = the block's labels as CSR (indptr relative to the block,
    indices) gives the targets.
    """
    if len(top_lists) != len(layout.model_names):
        raise ValueError(f"{len(top_lists)} prediction blocks for {len(layout.model_names)} models")
    indptr, labels = candidate_labels([idx for idx, _ in top_lists], top_n, num_classes)
    num_videos, num_rows, num_models = len(indptr) - 1, len(labels), len(top_lists)
    keys = rows_of_candidates(indptr) * num_classes + labels  # sorted, unique
    out = np.full((num_rows, layout.num_features), np.nan, np.float32)
    present = np.zeros(num_rows, np.float32)
    total = np.zeros(num_rows, np.float32)
    rank_base = num_models
    top1_base = num_models * (2 if layout.rank_features else 1)
    candidate_video = rows_of_candidates(indptr)
    for m, (indices, scores) in enumerate(top_lists):
        indices = np.asarray(indices)
        scores = np.asarray(scores, np.float32)
        # A model's full top K (not just its top_n) is looked up: a label another model put
        # in the candidates may still be in this model's list further down.
        model_keys = pair_keys(indices, num_classes).ravel()
        pos = np.searchsorted(keys, model_keys).clip(max=max(num_rows - 1, 0))
        hit = keys[pos] == model_keys if num_rows else np.zeros(model_keys.size, bool)
        where = pos[hit]
        out[where, m] = scores.ravel()[hit]
        total[where] += scores.ravel()[hit]
        present[where] += 1
        if layout.rank_features:
            ranks = np.broadcast_to(np.arange(indices.shape[1], dtype=np.float32), indices.shape)
            out[where, rank_base + m] = ranks.ravel()[hit]
        if layout.context_features:
            best = scores[:, 0] if scores.shape[1] else np.full(num_videos, np.nan, np.float32)
            out[:, top1_base + m] = best[candidate_video]
    if layout.context_features:
        out[:, top1_base + num_models] = total / num_models
        out[:, top1_base + num_models + 1] = present
    out[:, layout.label_column] = labels
    if label_freq is not None:
        out[:, layout.freq_column] = np.asarray(label_freq, np.float32)[labels]
    targets = None
    if true_labels is not None:
        targets = candidate_targets(indptr, labels, *true_labels, num_classes)
    return FeatureBlock(indptr=indptr, labels=labels, features=out, targets=targets)


def store_labels_block(
    labels_indptr: np.ndarray, labels_indices: np.ndarray, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the videos ``start:stop`` of a store as CSR relative to the block."""
    ptr = np.asarray(labels_indptr[start : stop + 1], np.int64)
    return ptr - ptr[0], np.asarray(labels_indices[ptr[0] : ptr[-1]])


def top_k_from_candidates(
    indptr: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each video's top-k (labels, scores) among its candidates, highest first (ties by
    lower label). A video with fewer than k candidates is padded with its lowest
    non-candidate labels at score 0, so that every row of a prediction set is full."""
    k = min(k, num_classes)
    num_videos = len(indptr) - 1
    counts = np.diff(indptr)
    width = max(int(counts.max(initial=0)), k)
    video = rows_of_candidates(indptr)
    slot = np.arange(len(labels)) - indptr[video]
    grid_scores = np.full((num_videos, width), -np.inf, np.float32)
    grid_labels = np.full((num_videos, width), num_classes, np.int64)  # sorts after real ones
    grid_scores[video, slot] = scores
    grid_labels[video, slot] = labels
    order = np.lexsort((grid_labels, -grid_scores), axis=1)[:, :k]
    top_labels = np.take_along_axis(grid_labels, order, axis=1)
    top_scores = np.take_along_axis(grid_scores, order, axis=1)
    short = np.flatnonzero(counts < k)
    if short.size:
        taken = np.zeros((short.size, num_classes), bool)
        sub_ptr = np.concatenate([[0], np.cumsum(counts[short])])
        taken[rows_of_candidates(sub_ptr), labels[expand_rows(indptr, short)]] = True
        # False sorts first: each row's non-candidate labels, ascending.
        fillers = np.argsort(taken, axis=1, kind="stable")[:, :k]
        slots = np.arange(k)[None, :]
        need = slots >= counts[short][:, None]
        fill_from = np.clip(slots - counts[short][:, None], 0, k - 1)
        filled = np.take_along_axis(fillers, fill_from, axis=1)
        top_labels[short] = np.where(need, filled, top_labels[short])
        top_scores[short] = np.where(need, 0.0, top_scores[short])
    return top_labels, top_scores
