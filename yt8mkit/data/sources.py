"""Turning what a user types (files, folders, globs) into an ordered list of TFRecord files."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from yt8mkit.errors import BadInputError

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")


def resolve_sources(patterns: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files as given, folders expanded to their TFRecord files, globs expanded; sorted
    within each pattern so that a store's video order is the same on every machine."""
    return find_sources(patterns)[0]


def find_sources(patterns: Sequence[str | os.PathLike[str]],
                 suffixes: tuple[str, ...] = TFRECORD_SUFFIXES,
                 ) -> tuple[list[str], list[str]]:
    """``resolve_sources``, and each file's ``resolved_paths`` (computed once: the
    check that no file is given twice needs them too). A folder gives its files named
    with one of ``suffixes`` (any case): TFRecords by default, Parquet for its reader."""
    files: list[str] = []
    for pattern in patterns:
        text = str(pattern)
        path = Path(text)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and p.name.lower().endswith(suffixes))
            if not found:
                raise BadInputError(text, f"folder holds no {suffixes[0]} files")
            files.extend(found)
        elif path.is_file():
            files.append(text)
        elif glob.has_magic(text):
            found = sorted(p for p in glob.glob(text) if Path(p).is_file())
            if not found:
                raise BadInputError(text, "pattern matches no files")
            files.extend(found)
        else:
            raise BadInputError(text, "no such file or folder")
    if not files:
        raise BadInputError("(no input)", "empty input: no files given")
    real_paths = resolved_paths(files)
    seen: set[str] = set()
    for typed, real in zip(files, real_paths):
        if real in seen:
            raise BadInputError(typed, "file given more than once")
        seen.add(real)
    return files, real_paths


def resolved_paths(files: Sequence[str | os.PathLike[str]]) -> list[str]:
    """``str(Path(f).resolve())`` of each file, with one ``realpath`` per folder rather
    than per file (it checks every component of the path: for thousands of shards,
    seconds), plus one check whether the file itself is a link."""
    folders: dict[str, str] = {}
    out = []
    for file in files:
        # Joined, not normalised: "link/.." must go through the link, as resolve does.
        text = os.path.join(os.getcwd(), os.fspath(file))
        folder, name = os.path.split(text)
        if os.path.islink(text):
            out.append(os.path.realpath(text))
            continue
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        out.append(os.path.join(folders[folder], name))
    return out
