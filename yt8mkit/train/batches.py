"""The batches a model is fed: video-level rows or padded frame sequences, chosen by the
model's kind, with hard labels or (for distillation) soft targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from yt8mkit.data.loader import Batch, epoch_order, video_batches
from yt8mkit.data.store import Store
from yt8mkit.train.config import TrainConfig

# rows -> float32 (len(rows), num_classes) targets; replaces the store's hard labels.
TargetFn = Callable[[np.ndarray], np.ndarray]


def batch_stream(
    config: TrainConfig,
    store: Store,
    rows: np.ndarray,
    *,
    training: bool,
    epoch: int = 0,
    targets: TargetFn | None = None,
) -> Iterator[Batch]:
    """Training: the epoch's seeded order, full batches only, targets attached.
    Otherwise: ``rows`` in order, every row, no targets."""
    batch_size = config.batch_size if training else config.eval_batch_size
    order = epoch_order(rows, config.seed, epoch) if training else rows
    modalities = _modalities(config, store)
    if config.frame_level:
        if not store.has_frames:
            raise ValueError(
                f"{config.name}: model {config.model.name!r} is frame-level but the store "
                f"{store.path} holds video-level features only"
            )
        from yt8mkit.data.frame_loader import frame_batches

        stream = frame_batches(
            store, order, batch_size, with_targets=training and targets is None,
            modalities=modalities, max_frames=config.frames.max_frames,
            bucket_by_length=config.frames.bucket_by_length and training,
            seed=config.seed, epoch=epoch, workers=config.frames.workers,
            stride=config.frames.stride,
        )
    else:
        stream = video_batches(
            store, order, batch_size, with_targets=training and targets is None,
            modalities=modalities,
        )
    for batch in stream:
        # A short last batch would weigh its few videos more, and BatchNorm cannot train
        # on a batch of one.
        if training and len(batch.rows) < min(batch_size, len(rows)):
            continue
        if training and targets is not None:
            batch.targets = torch.from_numpy(np.asarray(targets(batch.rows), np.float32))
        yield batch


def _modalities(config: TrainConfig, store: Store) -> list[str]:
    wanted = config.model.params.get("inputs")
    if wanted:
        return [m for m in store.modalities if m in wanted]
    return store.modalities
