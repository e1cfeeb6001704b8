"""Dropping videos from a store being written: ``--skip-corrupt`` skips a record whose
video id an earlier record has, and that is only known once every file is appended.

Each array file is rewritten without the dropped videos, a block of videos at a time
(memory bounded by a block, whatever the store's size), to a new file that replaces
the old one. A kill in between leaves array files shorter than the journal says, and
the next run then writes the store again from the start: complete or absent still.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BLOCK = 1 << 16  # videos a block


def duplicate_rows(blob: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every video whose id an earlier video has (all but the first of each id),
    ascending, and for each the first video with that id; ids as in ``ShardChunk``.
    The same sorted rows of integers as ``store.first_duplicate``."""
    lengths = np.diff(offsets)
    n = len(lengths)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids = blob[offsets[0] : offsets[-1]]
    width = int(lengths.max())
    padded = np.zeros((n, 8 * max((width + 7) // 8, 1)), np.uint8)
    cols = np.arange(ids.size) - np.repeat(offsets[:-1] - offsets[0], lengths)
    padded[np.repeat(np.arange(n), lengths), cols] = ids
    keys = [*padded.view(np.uint64).T, lengths]
    order = np.lexsort(keys)  # stable: equal ids stay in video order
    same = np.ones(n - 1, bool)
    for key in keys:
        ranked = key[order]
        same &= ranked[1:] == ranked[:-1]
    # Position in the sorted order of the first of each run of equal ids.
    starts = np.maximum.accumulate(np.where(np.concatenate([[False], same]), 0, np.arange(n)))
    later = np.flatnonzero(same) + 1
    dups, firsts = order[later], order[starts[later]]
    ranked_dups = np.argsort(dups)
    return dups[ranked_dups], firsts[ranked_dups]


def compact_fixed(path: Path, row_bytes: int, keep: np.ndarray) -> None:
    """Rewrite ``path``, rows of ``row_bytes`` bytes, keeping the rows ``keep`` marks."""
    data = np.memmap(path, np.uint8, "r") if path.stat().st_size else np.zeros(0, np.uint8)
    rows = data.reshape(len(keep), row_bytes)
    tmp = path.with_name(path.name + ".compact")
    with open(tmp, "wb") as out:
        for start in range(0, len(keep), BLOCK):
            block = slice(start, start + BLOCK)
            out.write(np.ascontiguousarray(rows[block][keep[block]]).tobytes())
    del data, rows
    os.replace(tmp, path)


def compact_ragged(values: Path, bounds: np.ndarray, item_bytes: int, keep: np.ndarray) -> None:
    """Rewrite ``values`` (items of ``item_bytes`` bytes; video i's are items
    ``bounds[i]:bounds[i + 1]``) keeping the videos ``keep`` marks. The offsets file
    is the caller's (``kept_offsets``): several value files can share one."""
    size = values.stat().st_size
    data = np.memmap(values, np.uint8, "r") if size else np.zeros(0, np.uint8)
    tmp = values.with_name(values.name + ".compact")
    lengths = np.diff(bounds)
    with open(tmp, "wb") as out:
        for start in range(0, len(keep), BLOCK):
            stop = min(start + BLOCK, len(keep))
            first, last = int(bounds[start]), int(bounds[stop])
            part = data[first * item_bytes : last * item_bytes]
            items = np.repeat(keep[start:stop], lengths[start:stop])
            mask = np.repeat(items, item_bytes) if item_bytes != 1 else items
            out.write(np.ascontiguousarray(part[mask]).tobytes())
    del data
    os.replace(tmp, values)


def kept_offsets(bounds: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The offsets (n kept + 1) of the kept videos' items, as ``compact_ragged`` wrote
    them."""
    lengths = np.diff(bounds)[keep]
    return np.concatenate([bounds[:1], bounds[0] + np.cumsum(lengths)]).astype(np.int64)
