"""Claiming a run directory for writing: the one call every entry point that writes
one makes first (train, zoo, stack, distill, export, pipeline).

A run directory is refused when it is a file, or an existing folder with other
things in it than a run of this tool (the tool never deletes or overwrites what it
did not write); otherwise its writer lock is taken until the process ends, so that a
second writer gets "in use by pid N" instead of racing the first.
"""

from __future__ import annotations

import os
from pathlib import Path

from yt8mkit.locks import acquire
from yt8mkit.outputs import OutputError

LOCK = ".lock"
# What a run directory of this tool holds, besides its lock (written by every writer
# since locks exist): the config files of the train, pipeline and stack runs, a zoo's
# failures.json, and metrics.json; distillation's folder holds runs in subfolders.
_MARKERS = ("config.yaml", "config.json", "failures.json", "metrics.json", LOCK)


def is_run_dir(path: Path) -> bool:
    if any((path / name).is_file() for name in _MARKERS):
        return True
    return any((sub / "config.yaml").is_file() for sub in path.iterdir() if sub.is_dir())


def lock_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Check that ``run_dir`` is new, empty or a run directory of this tool, create it,
    and take its writer lock until this process ends (re-entrant in one process)."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a run directory")
    if path.is_dir() and any(path.iterdir()) and not is_run_dir(path):
        raise OutputError(
            f"{path}: exists and is not a run directory of yt8mkit; it is left as it is "
            f"(give another --out)"
        )
    acquire(path / LOCK, f"run directory {path}")
