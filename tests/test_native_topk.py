"""The C top-k kernel on its own: built by the install, both of its instruction-set
versions equal to a stable argsort, NaN found wherever it is, bad buffers refused.

The kernel's bound comes from 64 interleaved column groups and chunks of 16 scores,
so the shapes below straddle those sizes (rows shorter than a group sweep, tails
after the last whole chunk, k above the number of groups)."""

from __future__ import annotations

import numpy as np
import pytest

from yt8mkit.metrics import topk

native = topk._native_topk


def test_kernel_is_built() -> None:
    # The install compiles it wherever a C compiler is (as on CI); without it the
    # metrics fall back to numpy, many times slower, so its absence is a failure.
    assert native is not None, "yt8mkit.metrics._native_topk was not built"


def kernel_top_k(scores: np.ndarray, k: int, wide: bool) -> tuple[np.ndarray, np.ndarray]:
    n, c = scores.shape
    idx = np.empty((n, k), np.int32)
    val = np.empty((n, k), np.float32)
    native.top_k(np.ascontiguousarray(scores, np.float32), n, c, k, idx, val, wide)
    return idx, val


def stable_top(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


SHAPES = [(5, 1, 1), (7, 15, 3), (9, 63, 20), (9, 64, 20), (11, 65, 64), (6, 200, 65),
          (4, 200, 200), (13, 1000, 20), (3, 3862, 20), (40, 3862, 1), (8, 777, 100)]


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize(("n", "c", "k"), SHAPES)
def test_kernel_equals_stable_argsort(n: int, c: int, k: int, wide: bool) -> None:
    rng = np.random.default_rng(n * 7919 + c * 31 + k)
    cases = [
        rng.random((n, c), np.float32),
        np.round(rng.normal(size=(n, c)), 1).astype(np.float32),  # ties everywhere
        rng.integers(0, 3, (n, c)).astype(np.float32),  # mostly ties at the k-th
        np.zeros((n, c), np.float32),
    ]
    special = rng.random((n, c), np.float32)
    special[:, ::5] = -np.inf
    special[:, 3::11] = np.inf
    cases.append(special)
    falling = np.tile(np.arange(c, 0, -1, dtype=np.float32), (n, 1))  # best first
    cases += [falling, falling[:, ::-1].copy()]  # and best last: the list fills late
    for scores in cases:
        idx, val = kernel_top_k(scores, k, wide)
        want = stable_top(scores, k)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_array_equal(val, np.take_along_axis(scores, want, axis=1))


@pytest.mark.parametrize("wide", [True, False])
def test_kernel_reports_the_first_nan_row(wide: bool) -> None:
    for c in (1, 17, 64, 100, 3862):
        for col in sorted({0, c // 2, c - 1}):
            scores = np.ones((4, c), np.float32)
            scores[2, col] = np.nan
            with pytest.raises(ValueError, match=r"NaN \(row 2 of the block\)"):
                kernel_top_k(scores, min(20, c), wide)
    all_nan = np.full((3, 100), np.nan, np.float32)
    with pytest.raises(ValueError, match="row 0"):
        kernel_top_k(all_nan, 5, wide)


def test_kernel_refuses_bad_buffers() -> None:
    scores = np.zeros((4, 10), np.float32)
    idx = np.empty((4, 3), np.int32)
    val = np.empty((4, 3), np.float32)
    with pytest.raises(ValueError, match="scores holds 160 bytes, expected 200"):
        native.top_k(scores, 5, 10, 3, idx, val)
    with pytest.raises(ValueError, match="indices holds"):
        native.top_k(scores, 4, 10, 2, idx, val)
    with pytest.raises(ValueError, match="bad shape"):
        native.top_k(scores, 4, 10, 11, idx, val)
    with pytest.raises(TypeError):
        native.top_k(scores, 4, 10, 3, idx, [0.0] * 12)  # not a writable buffer
    with pytest.raises((BufferError, ValueError)):
        native.top_k(scores[:, ::2], 4, 5, 3, idx, val)  # not contiguous


def test_label_hits_and_bad_csr() -> None:
    idx = np.array([[3, 1, -1], [0, 2, 4]], np.int32)
    indptr = np.array([0, 2, 3], np.int64)
    labels = np.array([1, 3, 4], np.int32)
    hits = np.empty((2, 3), np.uint8)
    native.label_hits(idx, 2, 3, indptr, labels, 5, hits)
    np.testing.assert_array_equal(hits, [[1, 1, 0], [0, 0, 1]])
    for bad in ([0, 2, 4], [0, 3, 2], [-1, 2, 3]):
        with pytest.raises(ValueError, match="CSR"):
            native.label_hits(idx, 2, 3, np.array(bad, np.int64), labels, 5, hits)
    with pytest.raises(ValueError, match=r"label 4 outside \[0, 4\)"):
        native.label_hits(idx, 2, 3, indptr, labels, 4, hits)
    # A predicted class beyond the labels' range is simply not a hit.
    native.label_hits(np.array([[9, 1, 3], [0, 2, 4]], np.int32), 2, 3, indptr, labels, 5, hits)
    np.testing.assert_array_equal(hits, [[0, 1, 1], [0, 0, 1]])


def test_native_backend_keeps_dtypes_and_views() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random((700, 90)), 2).astype(np.float16)
    idx, val = topk.top_k(scores[:, 5:], 20, "native")  # a strided view, float16
    want = stable_top(scores[:, 5:].astype(np.float32), 20)
    np.testing.assert_array_equal(idx, want)
    assert val.dtype == np.float16
