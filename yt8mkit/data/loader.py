"""Batches of video-level inputs and targets read from a store's memory maps.

Only the rows of the current batch are read; the store is never loaded whole. Row
order within an epoch comes from (seed, epoch), so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from yt8mkit.data.store import Store


@dataclass
class Batch:
    rows: np.ndarray
    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor | None


def epoch_order(rows: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(rows)


def video_batches(
    store: Store,
    rows: np.ndarray,
    batch_size: int,
    with_targets: bool = True,
    modalities: list[str] | None = None,
    drop_last: bool = False,
) -> Iterator[Batch]:
    modalities = modalities or store.modalities
    stop = len(rows) - (len(rows) % batch_size if drop_last and len(rows) > batch_size else 0)
    for start in range(0, stop, batch_size):
        batch_rows = rows[start : start + batch_size]
        # Sorted reads walk the memory map forwards; the batch's order is restored after.
        order = np.argsort(batch_rows, kind="stable")
        sorted_rows = batch_rows[order]
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        inputs = {
            m: torch.from_numpy(
                np.asarray(store.video_features(m)[sorted_rows], np.float32)[back]
            )
            for m in modalities
        }
        targets = torch.from_numpy(store.labels_dense(batch_rows)) if with_targets else None
        yield Batch(batch_rows, inputs, targets)
