"""faiss's bundled OpenBLAS is told this CPU's kernels, without touching the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from yt8mkit.features.faiss_blas import openblas_coretype

_IMPORT = (
    "import os\n"
    "from yt8mkit.features.faiss_blas import faiss\n"
    "print('CORETYPE', os.environ.get('OPENBLAS_CORETYPE'))"
)


def _import_in_child(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(extra_env, OPENBLAS_VERBOSE="2")
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout + done.stderr


def test_coretype_follows_the_cpu_capability() -> None:
    assert openblas_coretype("AVX512") == "SkylakeX"
    assert openblas_coretype("AVX2") == "Haswell"
    assert openblas_coretype("DEFAULT") is None


def test_faiss_blas_loads_the_vector_kernels_and_restores_the_environment() -> None:
    output = _import_in_child({})
    # The variable was only set for the import.
    assert "CORETYPE None" in output
    expected = openblas_coretype(torch.backends.cpu.get_cpu_capability())
    if expected is not None:
        # OpenBLAS reports the kernels it loaded; "Prescott" is its generic fallback.
        assert f"Core: {expected}" in output
        assert "Core: Prescott" not in output


def test_a_users_coretype_is_kept() -> None:
    output = _import_in_child({"OPENBLAS_CORETYPE": "Haswell"})
    assert "CORETYPE Haswell" in output
    assert "Core: Haswell" in output
