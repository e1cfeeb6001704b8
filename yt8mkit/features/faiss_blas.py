"""faiss, imported so that its BLAS uses this CPU's vector units.

The faiss-cpu wheel bundles OpenBLAS 0.3.15, which does not know CPUs newer than it
(Sapphire Rapids, for one) and falls back to its generic "Prescott" kernels: measured
here, k-means ran at 43 GFLOP/s instead of 211 with the AVX-512 kernels
(bench/bench_kmeans.py, with ``OPENBLAS_CORETYPE=Prescott`` and without). OpenBLAS
reads ``OPENBLAS_CORETYPE`` once, when the library loads, so it is set before the first
``import faiss``, from the instruction set PyTorch detected, and only when the user has
not set it; it is removed again after the import, so child processes and other
libraries see the environment as it was. numpy's and PyTorch's BLAS are loaded earlier
and are not affected.
"""

from __future__ import annotations

import os
import sys

import torch

# PyTorch's CPU capability -> the OpenBLAS kernel family for it.
_CORETYPE_FOR_CAPABILITY = {"AVX512": "SkylakeX", "AVX2": "Haswell"}


def openblas_coretype(capability: str) -> str | None:
    """The OpenBLAS core type to force for a PyTorch CPU capability, or None for none."""
    return _CORETYPE_FOR_CAPABILITY.get(capability)


def _choose_coretype() -> bool:
    """Set OPENBLAS_CORETYPE for faiss's first import; True when this set it."""
    if "faiss" in sys.modules or os.environ.get("OPENBLAS_CORETYPE"):
        return False
    coretype = openblas_coretype(torch.backends.cpu.get_cpu_capability())
    if coretype is None:
        return False
    os.environ["OPENBLAS_CORETYPE"] = coretype
    return True


_coretype_set_here = _choose_coretype()

import faiss  # noqa: E402  (OpenBLAS reads the variable as it loads)

if _coretype_set_here:
    del os.environ["OPENBLAS_CORETYPE"]

__all__ = ["faiss", "openblas_coretype"]
