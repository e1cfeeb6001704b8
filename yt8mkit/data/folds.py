"""K seeded folds over a store's videos, the same on every machine.

A video's fold follows from a keyed hash of its id, not from a random generator's
stream, so folds do not depend on numpy's version, the platform or the order of the
input files: videos are ranked by hash and dealt out in turn, which keeps folds within
one video of equal size.

A share of the videos can be set aside as the *selection split* (fold ``SELECTION``,
-1): no first-level model trains on them, so they are the videos on which every
second-level choice (students' epochs, soft-label options, the final model) is made and
scored without leaking what the teachers learnt from their labels (DESIGN.md,
"Leak-free second level"). The first level predicts them as it predicts test videos, by
the mean of its fold models.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from yt8mkit.data.store import Store

SELECTION = -1


def assign_folds(ids: list[str], num_folds: int = 5, seed: int = 0,
                 selection_fraction: float = 0.0) -> np.ndarray:
    if not 0.0 <= selection_fraction < 1.0:
        raise ValueError(f"selection_fraction must be within [0, 1), got {selection_fraction}")
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
    # Every k-th video by hash rank goes to the selection split, the rest are dealt out
    # in turn: both keep their share of the videos whatever the ids look like.
    num_selected = round(len(ids) * selection_fraction)
    selected = np.zeros(len(ids), bool)
    if num_selected:
        picks = np.floor(np.arange(num_selected) * (len(ids) / num_selected)).astype(np.int64)
        selected[picks] = True
    rest = order[~selected]
    folds[order[selected]] = SELECTION
    folds[rest] = np.arange(len(rest)) % num_folds
    return folds


def partition_folds(folds: np.ndarray, ids: list[str], partition: int, seed: int
                    ) -> np.ndarray:
    """Partition ``partition`` of the same videos into as many folds as ``folds`` (the
    store's, dealt with ``seed``): 0 is ``folds`` itself; partition r re-deals the videos
    outside the selection split with the key ``seed + r``, the split unchanged.

    A model trained over several partitions (``TrainConfig.repeats``) predicts each
    training video once a partition, every time by a model that did not train on it: the
    mean is an out-of-fold prediction as leak-free as one partition's, and closer to the
    mean of fold models the selection split and the test videos get."""
    if partition == 0:
        return folds
    if len(ids) != len(folds):
        raise ValueError(f"{len(ids)} ids for {len(folds)} videos' folds")
    rest = np.flatnonzero(folds != SELECTION)
    num_folds = len(fold_ids(folds))
    out = np.full(len(folds), SELECTION, np.int8)
    out[rest] = assign_folds([ids[i] for i in rest], num_folds, seed + partition)
    return out


def fold_ids(folds: np.ndarray) -> list[int]:
    """The cross-validation folds, without the selection split."""
    return sorted(int(f) for f in np.unique(folds) if f != SELECTION)


def train_rows(folds: np.ndarray, fold: int) -> np.ndarray:
    """Rows a model of ``fold`` trains on: the other folds, never the selection split."""
    return np.flatnonzero((folds != fold) & (folds != SELECTION))


def selection_rows(folds: np.ndarray) -> np.ndarray:
    return np.flatnonzero(folds == SELECTION)


def write_folds(store: Store, num_folds: int = 5, seed: int = 0,
                selection_fraction: float = 0.0) -> np.ndarray:
    """Compute and save folds with the store (atomically); returns them."""
    folds = assign_folds(store.ids(), num_folds, seed, selection_fraction)
    tmp = store.path / "folds.bin.tmp"
    folds.tofile(tmp)
    os.replace(tmp, store.path / "folds.bin")
    info = {"num_folds": num_folds, "seed": seed, "selection_fraction": selection_fraction,
            "sizes": [int((folds == f).sum()) for f in range(num_folds)],
            "selection": int((folds == SELECTION).sum())}
    (store.path / "folds.json").write_text(json.dumps(info, indent=2))
    return folds


def folds_info(store: Store) -> dict | None:
    path = store.path / "folds.json"
    return json.loads(path.read_text()) if path.is_file() else None
