"""Exact top-k selection over dense score rows, and the sparse label container.

Tie rule (shared by every metric in this package): among equal scores in one row,
the lower class index ranks first. So the top k of a row is always the same set,
whatever the numpy version or the order the work is split in.

The selection avoids sorting or partitioning whole rows, which costs far more than
reading them: per block of rows it splits the columns into ``GROUPS`` interleaved
groups and takes each group's maximum, whose k-th largest is a lower bound of the
row's k-th largest score (k distinct groups hold a score at least that high). Only the
scores above that bound, a few more than k per row, are then ranked exactly.

That numpy path still reads a block three times (group maxima, compare, mask scan).
Where the C kernel ``_native_topk`` was built (it is, by the install, wherever a C
compiler is), float32 and float16 rows go through it instead: the same bound, but the
row is read from memory once and the candidates are picked from the L1 cache. Both
paths give the same selection; ``backend`` chooses one (the tests compare them).
"""

from __future__ import annotations

import builtins
import importlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, TypeVar

import numpy as np

_native_topk: ModuleType | None
try:
    _native_topk = importlib.import_module("yt8mkit.metrics._native_topk")
except ImportError:  # installed without a C compiler: the numpy path serves
    _native_topk = None

Backend = Literal["auto", "native", "numpy"]

# Rows per block: big enough that numpy's per-call overhead vanishes, small enough
# that a block stays in the L3 cache between the passes over it.
BLOCK_ROWS = 512
# Column groups of the lower bound (at least 2k). Interleaved groups (group j holds
# columns j, j + GROUPS, ...) make their maxima an elementwise maximum over contiguous
# runs of the row, which numpy vectorises, unlike a reduction over each short group;
# with many groups the bound is tight, so few more than k scores a row pass it.
GROUPS = 128
# Rows per call of the C kernel: it streams rows and keeps nothing between them, so
# its blocks are larger only to make the Python work around each call rarer.
NATIVE_BLOCK_ROWS = 2048

T = TypeVar("T")
U = TypeVar("U")


def default_workers() -> int:
    """Threads for block work: ``YT8M_METRICS_THREADS`` or the CPU count (at most 4)."""
    env = os.environ.get("YT8M_METRICS_THREADS")
    return max(1, int(env)) if env else min(4, os.cpu_count() or 1)


def map_blocks(
    fn: Callable[[int, int], T], n: int, workers: int | None = None, rows: int = BLOCK_ROWS
) -> list[T]:
    """``fn(start, stop)`` over the blocks of ``n`` rows, results in block order.

    Blocks run on a thread pool: numpy releases the GIL in its loops, so the blocks'
    scans overlap on several cores.
    """
    spans = [(start, min(start + rows, n)) for start in range(0, n, rows)]
    return map_parts(lambda span: fn(*span), spans, workers)


def map_parts(fn: Callable[[U], T], parts: Sequence[U], workers: int | None = None) -> list[T]:
    """``fn`` over ``parts`` on a thread pool (numpy and the C kernel release the GIL,
    so the parts overlap on several cores); results in order."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(parts) <= 1:
        return [fn(part) for part in parts]
    with ThreadPoolExecutor(min(workers, len(parts))) as pool:
        return list(pool.map(fn, parts))


def csr_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``rows``, entry index) of every stored entry of the CSR rows ``rows``,
    row after row in the order of ``rows``: what scattering rows to a dense array or
    gathering them into a new CSR matrix reads."""
    rows = np.asarray(rows, np.int64)
    starts = np.asarray(indptr[rows], np.int64)
    counts = np.asarray(indptr[rows + 1], np.int64) - starts
    which = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts  # where each row's entries begin in the output
    entries = np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    return which, entries


@dataclass(frozen=True, eq=False)
class Labels:
    """Ground truth of n videos as CSR: video ``i`` has ``indices[indptr[i]:indptr[i+1]]``.

    This is the store's own layout, so a store's label arrays (memory-mapped) can be
    wrapped without a copy. Indices need not be sorted within a row, but must not repeat.
    """

    indptr: np.ndarray
    indices: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        indptr = np.asarray(self.indptr)
        if indptr.ndim != 1 or len(indptr) == 0 or indptr[0] != 0:
            raise ValueError("labels indptr must be 1-d and start at 0")
        if indptr[-1] != len(self.indices):
            raise ValueError(
                f"labels indptr ends at {indptr[-1]} but there are {len(self.indices)} indices"
            )
        if len(indptr) > 1 and np.any(np.diff(indptr) < 0):
            raise ValueError("labels indptr must not decrease")
        if len(self.indices) and (
            int(np.min(self.indices)) < 0 or int(np.max(self.indices)) >= self.num_classes
        ):
            raise ValueError(f"a label index is outside [0, {self.num_classes})")
        object.__setattr__(self, "indptr", indptr.astype(np.int64, copy=False))
        object.__setattr__(self, "indices", np.asarray(self.indices))

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> Labels:
        """Labels from an (n, C) array; any value > 0 is a positive, as in the starter."""
        dense = np.asarray(dense)
        if dense.ndim != 2:
            raise ValueError(f"dense labels must be 2-d, got shape {dense.shape}")
        rows, cols = np.nonzero(dense > 0)
        indptr = np.zeros(dense.shape[0] + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
        return cls(indptr, cols.astype(np.int32), dense.shape[1])

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], num_classes: int) -> Labels:
        counts = np.fromiter((len(r) for r in rows), np.int64, len(rows))
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        flat = [int(c) for r in rows for c in r]
        return cls(indptr, np.asarray(flat, np.int32), num_classes)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def counts(self) -> np.ndarray:
        """Number of labels of each video."""
        return np.diff(self.indptr)

    def slice(self, start: int, stop: int) -> Labels:
        """Videos ``start:stop`` (a view, no copy of the indices)."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return Labels(self.indptr[start : stop + 1] - lo, self.indices[lo:hi], self.num_classes)

    def take(self, rows: np.ndarray) -> Labels:
        """Videos ``rows`` in that order (a copy)."""
        rows = np.asarray(rows, np.int64)
        counts = self.counts()[rows]
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        _, entries = csr_entries(self.indptr, rows)
        return Labels(indptr, self.indices[entries], self.num_classes)

    def row_ids(self) -> np.ndarray:
        """Video of each stored index (int64, nondecreasing)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.counts())

    def dense(self, rows: np.ndarray | builtins.slice | None = None,
              dtype: type = np.float32) -> np.ndarray:
        """(len(rows), C) 0/1 array of the given videos (all when ``rows`` is None)."""
        sub = (
            self
            if rows is None
            else (
                self.slice(*rows.indices(len(self))[:2])
                if isinstance(rows, slice)
                else self.take(rows)
            )
        )
        out: np.ndarray = np.zeros((len(sub), self.num_classes), dtype)
        out[sub.row_ids(), sub.indices] = 1
        return out

    def hits(self, indices: np.ndarray) -> np.ndarray:
        """Whether each entry of an (n, K) array of class indices (one row per video) is
        a label of its video; negative entries (padding) never are."""
        indices = np.asarray(indices)
        if indices.ndim != 2 or indices.shape[0] != len(self):
            raise ValueError(f"indices of shape {indices.shape} for {len(self)} videos")
        if indices.size and int(indices.max()) >= self.num_classes:
            raise ValueError(f"a predicted class index is >= {self.num_classes}")
        keys = self.sorted_keys()
        if len(keys) == 0:
            return np.zeros(indices.shape, bool)
        query = np.arange(len(self), dtype=np.int64)[:, None] * self.num_classes + indices
        found = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return (indices >= 0) & (keys[found] == query)

    def sorted_keys(self) -> np.ndarray:
        """``video * C + label`` of every label, sorted: membership tests by searchsorted."""
        keys = self.row_ids() * self.num_classes + self.indices.astype(np.int64)
        if len(keys) > 1 and np.any(keys[1:] <= keys[:-1]):
            keys = np.sort(keys)
            if np.any(keys[1:] == keys[:-1]):
                raise ValueError("a video lists the same label twice")
        return keys


def as_labels(labels: Labels | np.ndarray, n: int, num_classes: int | None = None) -> Labels:
    """``labels`` as ``Labels`` (dense 0/1 arrays are converted), checked against the
    prediction shape."""
    if not isinstance(labels, Labels):
        labels = Labels.from_dense(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} label rows for {n} prediction rows")
    if num_classes is not None and labels.num_classes != num_classes:
        raise ValueError(f"labels have {labels.num_classes} classes, scores have {num_classes}")
    return labels


@dataclass(frozen=True, eq=False)
class Selection:
    """The top k entries of each row of a block, in row-major order (class ascending
    within a row, not by score): exactly ``min(k, C)`` per row.

    ``tau`` is each row's k-th largest score; every selected score is >= it and every
    score above it is selected, so membership of any (row, class) can be decided from
    ``tau`` plus the few selected entries equal to it.
    """

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    tau: np.ndarray
    num_cols: int

    def contains(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Whether each (row, col) whose score is ``vals`` is among the selected entries."""
        tau = self.tau[rows]
        hit = vals > tau
        tied = np.flatnonzero(vals == tau)
        if len(tied):
            # Only entries at a row's threshold need a look-up; these are rare.
            width = np.int64(self.num_cols)
            on_tau = self.vals == self.tau[self.rows]
            sel_keys = self.rows[on_tau] * width + self.cols[on_tau]
            keys = rows[tied] * width + cols[tied]
            pos = np.minimum(np.searchsorted(sel_keys, keys), len(sel_keys) - 1)
            hit[tied] = sel_keys[pos] == keys
        return hit


def check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _kth_largest_ragged(vals: np.ndarray, rows: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """k-th largest of ``vals`` within each row (rows sorted, each with >= k values)."""
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.zeros(n_rows, np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    width = int(counts.max())
    # Pad with -inf below every real value: the k-th largest is then unchanged.
    padded = np.full((n_rows, width), -np.inf, vals.dtype)
    padded[rows, np.arange(len(rows)) - starts[rows]] = vals
    return np.partition(padded, width - k, axis=1)[:, width - k]


def _candidates(block: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat position, row, score) of every score >= its row's bound, row-major."""
    flat = np.flatnonzero(block >= bound[:, None])
    return flat, flat // block.shape[1], block.ravel()[flat]


def select_block(block: np.ndarray, k: int) -> Selection:
    """Top ``k`` of each row of a 2-d float block under the tie rule; NaN is an error."""
    block = np.ascontiguousarray(block)
    if block.dtype.kind != "f":
        block = block.astype(np.float32)
    n, c = block.shape
    if c == 0:
        raise ValueError("scores have no classes")
    k = min(check_k(k), c)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return Selection(empty, empty, np.zeros(0, block.dtype), np.zeros(0, block.dtype), c)
    groups = min(max(2 * k, GROUPS), c)
    size = c // groups
    # The columns left over by the division are in no group: a bound from a subset of
    # the columns is still a lower bound of the row's k-th largest.
    gmax = block[:, : groups * size].reshape(n, size, groups).max(axis=1)
    nan_rows = np.flatnonzero(
        np.isnan(gmax).any(axis=1) | np.isnan(block[:, groups * size :]).any(axis=1)
    )
    if len(nan_rows):
        raise ValueError(f"scores contain NaN (row {int(nan_rows[0])} of the block)")
    bound = np.partition(gmax, groups - k, axis=1)[:, groups - k]
    flat, rows, vals = _candidates(block, bound)
    tau = bound if groups == c else _kth_largest_ragged(vals, rows, n, k)
    keep = vals >= tau[rows]
    if np.count_nonzero(keep) != n * k:
        # More ties at the threshold than places left: the lowest classes take them,
        # and candidates are row-major, so a row's tied entries come class-ascending.
        above = vals > tau[rows]
        room = k - np.bincount(rows[above], minlength=n)
        tied = np.flatnonzero(keep & ~above)
        tied_rows = rows[tied]
        first = np.searchsorted(tied_rows, tied_rows, side="left")
        keep = above
        keep[tied[np.arange(len(tied)) - first < room[tied_rows]]] = True
    rows = rows[keep]
    return Selection(rows, flat[keep] - rows * c, vals[keep], tau, c)


def use_native(dtype: np.dtype, backend: Backend) -> bool:
    """Whether rows of ``dtype`` go through the C kernel under ``backend``. float16
    widens to float32 exactly; float64 would not, so it stays on the numpy path."""
    if backend not in ("auto", "native", "numpy"):
        raise ValueError(f"backend must be auto, native or numpy, got {backend!r}")
    fits = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float16))
    if backend == "native":
        if _native_topk is None:
            raise RuntimeError(
                "the C top-k kernel (yt8mkit.metrics._native_topk) was not built: "
                "reinstall yt8mkit where a C compiler is available"
            )
        if not fits:
            raise ValueError(f"the C kernel takes float32 or float16 scores, not {dtype}")
    return backend != "numpy" and _native_topk is not None and fits


def native_top_k_block(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) int32 indices and float32 values of a float32/float16 block, ordered as
    ``top_k``; k <= C. NaN is a ValueError naming the row of the block."""
    block = np.ascontiguousarray(block, np.float32)
    n, c = block.shape
    indices = np.empty((n, k), np.int32)
    values = np.empty((n, k), np.float32)
    if n:
        assert _native_topk is not None  # callers check native_available()
        _native_topk.top_k(block, n, c, k, indices, values)
    return indices, values


def _order_selection(sel: Selection, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) indices and values, highest score first, ties by lower class."""
    cols = sel.cols.reshape(n, k)
    vals = sel.vals.reshape(n, k)
    # Stable on the class-ascending layout, so equal scores keep the lower class first.
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(vals, order, axis=1)


def top_k(
    scores: np.ndarray, k: int, backend: Backend = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` classes of each row: ``(indices int32 (n, k'), values (n, k'))`` with
    ``k' = min(k, C)``, highest score first, equal scores by lower class index.

    Raises ValueError on NaN scores (they have no rank).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-d, got shape {scores.shape}")
    n, c = scores.shape
    if c == 0:
        raise ValueError("scores have no classes")
    k = min(check_k(k), c)
    out_dtype = scores.dtype if scores.dtype.kind == "f" else np.dtype(np.float32)
    indices = np.empty((n, k), np.int32)
    values = np.empty((n, k), out_dtype)
    native = use_native(scores.dtype, backend)

    def run(start: int, stop: int) -> None:
        if native:
            indices[start:stop], values[start:stop] = native_top_k_block(scores[start:stop], k)
            return
        sel = select_block(scores[start:stop], k)
        indices[start:stop], values[start:stop] = _order_selection(sel, stop - start, k)

    map_blocks(run, n, rows=NATIVE_BLOCK_ROWS if native else BLOCK_ROWS)
    return indices, values


def order_sparse(
    indices: np.ndarray, scores: np.ndarray, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sort sparse top-K rows by the tie rule and keep the first ``k`` columns.

    Entries with a negative index are padding (no prediction): they go last with score
    -inf and stay negative, so every consumer can drop them by ``indices >= 0``.
    """
    indices = np.asarray(indices)
    scores = np.asarray(scores)
    if indices.shape != scores.shape or indices.ndim != 2:
        raise ValueError(f"indices {indices.shape} and scores {scores.shape} must be 2-d and alike")
    if np.isnan(scores[indices >= 0]).any():
        raise ValueError("scores contain NaN")
    width = indices.shape[1] if k is None else min(check_k(k), indices.shape[1])
    valid = indices >= 0
    key_score = np.where(valid, scores, -np.inf)
    key_class = np.where(valid, indices, np.iinfo(np.int64).max)
    # lexsort's last key is the primary one: score descending, then class ascending.
    order = np.lexsort((key_class, -key_score), axis=1)[:, :width]
    return (
        np.take_along_axis(np.where(valid, indices, -1), order, axis=1),
        np.take_along_axis(np.where(valid, scores, 0), order, axis=1),
    )
