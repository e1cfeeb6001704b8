"""K seeded folds over a store's videos, the same on every machine.

A video's fold follows from a keyed hash of its id, not from a random generator's
stream, so folds do not depend on numpy's version, the platform or the order of the
input files: videos are ranked by hash and dealt out in turn, which keeps folds within
one video of equal size.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from yt8mkit.data.store import Store


def assign_folds(ids: list[str], num_folds: int = 5, seed: int = 0) -> np.ndarray:
    if num_folds < 2:
        raise ValueError(f"need at least 2 folds, got {num_folds}")
    if num_folds > 127:
        raise ValueError(f"at most 127 folds, got {num_folds}")
    key = seed.to_bytes(8, "little", signed=True)
    hashes = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, key=key).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )
    order = np.lexsort((np.arange(len(ids)), hashes))
    folds = np.empty(len(ids), np.int8)
    folds[order] = np.arange(len(ids)) % num_folds
    return folds


def write_folds(store: Store, num_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Compute and save folds with the store (atomically); returns them."""
    folds = assign_folds(store.ids(), num_folds, seed)
    tmp = store.path / "folds.bin.tmp"
    folds.tofile(tmp)
    os.replace(tmp, store.path / "folds.bin")
    info = {"num_folds": num_folds, "seed": seed, "sizes": np.bincount(folds).tolist()}
    (store.path / "folds.json").write_text(json.dumps(info, indent=2))
    return folds


def folds_info(store: Store) -> dict | None:
    path = store.path / "folds.json"
    return json.loads(path.read_text()) if path.is_file() else None
