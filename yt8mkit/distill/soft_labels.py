"""Soft labels: the ensemble's out-of-fold scores as training targets for the students
(paper section 3, "Final ensemble and distillation"), instead of the noisy hard labels.

A sparse videos x classes matrix (CSR) holding the ensemble's score at each candidate it
kept; every other entry is 0. Optionally sharpened or softened by a temperature,
``soft = sigmoid(logit(p) / temperature)``, then blended with the hard labels:
``target = (1 - blend) * soft + blend * hard``, so a hard positive the ensemble dropped
still gets ``blend``.

Directory layout: ``indptr.npy`` int64 (n+1), ``indices.npy`` int32, ``values.npy``
float32, ``meta.json``; written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import numpy as np

from yt8mkit.data.predictions import Predictions
from yt8mkit.data.soft_targets import SoftLabels, SoftLabelsMeta
from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError

# Videos per block while building: bounds the keys held at once.
BLOCK_VIDEOS = 65536


def _with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    if temperature == 1.0:
        return probs
    clipped = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    logits = (np.log(clipped) - np.log1p(-clipped)) / temperature
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def build_soft_labels(ensemble_oof: Predictions, store: Store, blend: float = 0.0,
                      temperature: float = 1.0) -> SoftLabels:
    """Soft labels from the ensemble's out-of-fold prediction set, aligned with ``store``."""
    if not 0.0 <= blend <= 1.0:
        raise Yt8mError(f"blend must be within [0, 1], got {blend}")
    if not temperature > 0:
        raise Yt8mError(f"temperature must be above 0, got {temperature}")
    if len(ensemble_oof) != store.num_videos or ensemble_oof.meta.num_classes != store.num_classes:
        raise Yt8mError(
            f"{ensemble_oof.path}: {len(ensemble_oof)} videos x {ensemble_oof.meta.num_classes} "
            f"classes, the store {store.num_videos} x {store.num_classes}"
        )
    classes = store.num_classes
    label_ptr = np.asarray(store.labels_indptr, np.int64)
    indptr_parts, index_parts, value_parts = [np.zeros(1, np.int64)], [], []
    done = 0
    for start in range(0, store.num_videos, BLOCK_VIDEOS):
        stop = min(start + BLOCK_VIDEOS, store.num_videos)
        idx = np.asarray(ensemble_oof.indices[start:stop], np.int64)
        soft = np.asarray(ensemble_oof.scores[start:stop], np.float32)
        local = np.arange(stop - start, dtype=np.int64)
        soft_keys = (local[:, None] * classes + idx).ravel()
        soft = soft.ravel()
        # Padding entries of a prediction set (score 0) carry nothing: keep the matrix sparse.
        kept = soft > 0
        soft_keys, soft = soft_keys[kept], _with_temperature(soft[kept], temperature)
        counts = np.diff(label_ptr[start : stop + 1])
        hard_keys = np.repeat(local, counts) * classes + np.asarray(
            store.labels_indices[label_ptr[start] : label_ptr[stop]], np.int64
        )
        if blend > 0:
            hard_keys = np.unique(hard_keys)  # a label listed twice is still one label
            keys, inverse = np.unique(np.concatenate([soft_keys, hard_keys]), return_inverse=True)
            values = np.zeros(len(keys), np.float32)
            np.add.at(values, inverse[: len(soft_keys)], (1.0 - blend) * soft)
            np.add.at(values, inverse[len(soft_keys) :], np.float32(blend))
        else:
            order = np.argsort(soft_keys, kind="stable")
            keys, values = soft_keys[order], soft[order]
        rows = keys // classes
        indptr_parts.append(done + np.cumsum(np.bincount(rows, minlength=stop - start)))
        index_parts.append((keys % classes).astype(np.int32))
        value_parts.append(values.astype(np.float32))
        done += len(keys)
    return SoftLabels(
        indptr=np.concatenate(indptr_parts),
        indices=np.concatenate(index_parts) if index_parts else np.zeros(0, np.int32),
        values=np.concatenate(value_parts) if value_parts else np.zeros(0, np.float32),
        meta=SoftLabelsMeta(num_videos=store.num_videos, num_classes=classes, blend=blend,
                            temperature=temperature,
                            source=str(ensemble_oof.path)),
    )
