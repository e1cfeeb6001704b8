"""The rule for every ``--out`` folder: the tool never deletes or overwrites what it
did not write.

An ``--out`` is refused when it exists and is not this tool's output of the same kind
(a non-empty folder of something else, a file), and when it is an input, holds an
input or lies inside an input folder: replacing it would destroy the inputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from yt8mkit.errors import Yt8mError


class OutputError(Yt8mError):
    """An output path that the tool refuses to write."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_dir(
    out: str | os.PathLike[str],
    kind: str,
    is_ours: Callable[[Path], bool],
    inputs: Sequence[str | os.PathLike[str]] = (),
    resolved_files: Sequence[str] = (),
) -> Path:
    """``out`` resolved, once it is safe to write a ``kind`` there (and to replace what
    is there: an empty folder, or ``is_ours``); else OutputError saying why.

    ``inputs`` as the user gave them (files, folders), ``resolved_files`` input files
    already resolved (thousands of shards: resolving them again would cost more than
    ingesting a small input)."""
    given = Path(out)
    path = given.resolve()
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {given}: is a file; give a folder for the {kind}")
    prefix = str(path).rstrip(os.sep) + os.sep
    for file in resolved_files:
        if file == str(path) or file.startswith(prefix):
            raise OutputError(
                f"--out {given}: holds the input {file}; writing the {kind} there would "
                f"destroy it"
            )
    for source in inputs:
        real = Path(source).resolve()
        if _inside(real, path):
            raise OutputError(
                f"--out {given}: holds the input {source}; writing the {kind} there would "
                f"destroy it"
            )
        if real.is_dir() and _inside(path, real):
            raise OutputError(
                f"--out {given}: lies inside the input folder {source}; give a folder "
                f"outside the inputs"
            )
    if path.is_dir() and any(path.iterdir()) and not is_ours(path):
        raise OutputError(
            f"--out {given}: exists and is not a {kind}; it is left as it is (remove it "
            f"yourself, or give another --out)"
        )
    return path
