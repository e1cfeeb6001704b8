"""Video features in the store's dtype, float16 by default.

numpy's float32 → float16 cast runs one value at a time (about 5 ns a value here) and
was the largest cost of ingest. Casts here use the CPU's conversion instruction
(F16C), through the C feature-row pass of ``native_examples.c`` where it was built and
the CPU has it, else through PyTorch's cast, which uses the same instructions where it
can. Both round as numpy does (nearest even, subnormals, overflow to infinity; the
tests compare every rounding decision). PyTorch is imported only on that second path:
it takes about two seconds to import, longer than ingesting a small input.
"""

from __future__ import annotations

import numpy as np

from yt8mkit.data.native import native_examples


def casts_natively() -> bool:
    """Whether float16 casts run in this package's C code (no PyTorch needed)."""
    return native_examples is not None and bool(native_examples.HALF)


def as_video_dtype(values: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """``values.astype(dtype)``, without a copy when it already has that dtype."""
    if np.dtype(dtype) != np.float16 or values.dtype != np.float32 or not values.size:
        return values.astype(dtype, copy=False)
    values = np.ascontiguousarray(values)
    out = np.empty(values.shape, np.float16)
    if casts_natively():
        # All the values as one row of the feature-row pass (its finiteness flag unused).
        finite = np.empty(1, np.uint8)
        assert native_examples is not None  # casts_natively() says it is built
        native_examples.rows(
            values.view(np.uint8).ravel(), np.zeros(1, np.int64), values.size, out, finite
        )
        return out
    import torch

    torch.from_numpy(out).copy_(torch.from_numpy(values))
    return out
