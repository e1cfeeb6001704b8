"""A fixed frame representation, computed once per video into a video-level store.

A representation with no trainable weight and no random draw (statistics; mean removal,
the wavelet high-pass, principal component pursuit; regular or scene subsampling;
centroid statistics) gives a video the same vector at every step of every fold, yet a
frame-level model recomputes it for every batch: principal component pursuit costs
about 4 s a batch of 64 videos here, so 5 folds of 10 epochs pay for it some 60 times
over. Written once into a video-level store, with the source's ids and labels (and so
the same folds, which hash the ids), it trains as any video-level model does.

The store is written in blocks of videos, each journalled like an ingested file, so an
interrupted run resumes at the last complete block.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from yt8mkit.data.folds import folds_info, write_folds
from yt8mkit.data.frame_loader import frame_batches
from yt8mkit.data.shard import ShardChunk, pack_ids
from yt8mkit.data.store import Store, StoreWriter, is_store_dir
from yt8mkit.errors import Yt8mError
from yt8mkit.features.registry import RepresentationConfig
from yt8mkit.locks import exclusive, store_lock_file
from yt8mkit.outputs import check_out_dir

Progress = Callable[[int], None]  # videos done since the last call


def derive_store(
    source: Store,
    representation: RepresentationConfig,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    block_videos: int = 4096,
    max_frames: int = 300,
    stride: int = 1,
    progress: Progress | None = None,
) -> Store:
    """Write ``out``: the video-level store of ``representation`` over ``source``'s
    frames (float32 features, one modality per representation output)."""
    if not source.has_frames:
        raise Yt8mError(f"{source.path}: a video-level store has no frames to represent")
    built = representation.build(source.dims)
    if not built.is_fixed():
        raise Yt8mError(
            f"representation {representation.name!r} is learned or drawn at random in "
            f"training, so it has no fixed value to compute once; train it in its model"
        )
    built.eval()
    out_path = check_out_dir(out, "store", is_store_dir, [source.path])
    with exclusive(store_lock_file(out_path), f"store {out}"):
        return _derive_locked(source, built, representation, out_path, batch_size,
                              block_videos, max_frames, stride, progress)


def _derive_locked(
    source: Store, built: torch.nn.Module, representation: RepresentationConfig,
    out_path: Path, batch_size: int, block_videos: int, max_frames: int, stride: int,
    progress: Progress | None,
) -> Store:
    starts = list(range(0, source.num_videos, block_videos))
    blocks = [f"{source.path.resolve()}#videos{s}-{min(s + block_videos, source.num_videos)}"
              for s in starts]
    options = {"representation": representation.model_dump(mode="json"),
               "max_frames": max_frames, "stride": stride}
    writer = StoreWriter(out_path, blocks, options, video_dtype="float32")
    done = writer.open(resume=True)
    if progress is not None and done:
        progress(min(done * block_videos, source.num_videos))
    try:
        for start, name in zip(starts[done:], blocks[done:]):
            rows = np.arange(start, min(start + block_videos, source.num_videos))
            chunk = _block_chunk(source, built, rows, name, batch_size, max_frames, stride,
                                 progress)
            writer.check_chunk(chunk)
            writer.append(chunk)
        writer.finish(source.num_classes)
    except BaseException:
        writer.abort(keep_partial=True)
        raise
    derived = Store(out_path)
    info = folds_info(source)
    if info is not None:
        write_folds(derived, info["num_folds"], info["seed"],
                    info.get("selection_fraction", 0.0))
    return derived


def _block_chunk(
    source: Store, representation: torch.nn.Module, rows: np.ndarray, name: str,
    batch_size: int, max_frames: int, stride: int, progress: Progress | None,
) -> ShardChunk:
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for batch in frame_batches(source, rows, batch_size, with_targets=False,
                                   max_frames=max_frames, stride=stride):
            for modality, values in representation(batch.inputs).items():
                parts.setdefault(modality, []).append(values.numpy().astype(np.float32))
            if progress is not None:
                progress(len(batch.rows))
    video = {m: np.concatenate(v) for m, v in parts.items()}
    bad = [m for m, v in video.items() if not np.isfinite(v).all()]
    if bad:
        row = int(rows[np.flatnonzero(~np.isfinite(video[bad[0]]).all(axis=1))[0]])
        raise Yt8mError(f"{source.path}: video {source.video_id(row)!r} (row {row}): "
                        f"the representation gave NaN or Inf in {bad}")
    indptr = np.asarray(source.labels_indptr)
    first, last = int(indptr[rows[0]]), int(indptr[rows[-1] + 1])
    id_bytes, id_offsets = pack_ids([source.video_id(int(r)).encode() for r in rows])
    return ShardChunk(
        path=name,
        level="video",
        id_bytes=id_bytes,
        id_offsets=id_offsets,
        label_counts=np.diff(indptr[rows[0] : rows[-1] + 2]).astype(np.int32),
        label_indices=np.asarray(source.labels_indices[first:last], np.int32),
        labelled=np.asarray(source.labelled[rows], bool),
        record_indices=np.arange(len(rows), dtype=np.int32),
        video=video,
    )
