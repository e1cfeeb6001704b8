"""Ingest: TFRecord shards into a store, in parallel, streaming, resumable.

Workers each decode one shard (``read_shard``); the parent appends chunks in file
order. At most ``2 * workers`` shards are decoded or waiting at any time, so memory
is bounded by a few shards whatever the input size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from pydantic import BaseModel, Field

from yt8mkit.data.schema import FeatureSchema
from yt8mkit.data.shard import ShardChunk, ShardOptions, read_shard
from yt8mkit.data.sources import resolve_sources
from yt8mkit.data.store import StoreMeta, StoreWriter
from yt8mkit.errors import BadInputError


class IngestConfig(BaseModel):
    """Everything that decides what an ingest writes; defaults live here only."""

    workers: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)))
    num_classes: int | None = None
    modalities: list[str] = Field(default_factory=lambda: ["rgb", "audio"])
    video_dtype: str = "float16"
    check_crc: bool = True
    skip_corrupt: bool = False
    resume: bool = True


Progress = Callable[[str, int, int], None]  # (file, videos in it, files done)


def _options(config: IngestConfig) -> ShardOptions:
    return ShardOptions(
        schema=FeatureSchema(modalities=config.modalities),
        num_classes=config.num_classes,
        check_crc=config.check_crc,
        skip_corrupt=config.skip_corrupt,
    )


def ingest(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    config: IngestConfig | None = None,
    progress: Progress | None = None,
) -> StoreMeta:
    """Write the store ``out`` from TFRecord files, folders or globs.

    Bad input raises BadInputError and leaves nothing behind; an interruption (crash,
    Ctrl-C) leaves a partial store that the next call with the same inputs resumes.
    """
    config = config or IngestConfig()
    files = resolve_sources(sources)
    out_path = Path(out)
    options = _options(config)
    key = config.model_dump(exclude={"workers", "resume"})
    writer = StoreWriter(out_path, [str(Path(f).resolve()) for f in files], key, config.video_dtype)
    start = writer.open(resume=config.resume)
    try:
        for chunk in _decode_in_order(files[start:], options, config.workers):
            writer.check_chunk(chunk)
            writer.append(chunk)
            if progress is not None:
                progress(chunk.path, chunk.num_videos, writer.done_files)
        return writer.finish(config.num_classes)
    except BadInputError:
        writer.abort(keep_partial=False)
        raise
    except BaseException:
        writer.abort(keep_partial=True)
        raise


def _decode_in_order(
    files: Sequence[str], options: ShardOptions, workers: int
) -> Sequence[ShardChunk] | deque:
    if workers <= 1 or len(files) <= 1:
        for path in files:
            yield read_shard(path, options)
        return
    window = 2 * workers
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[ShardChunk]] = deque()
        queue = iter(files)
        for path in queue:
            pending.append(pool.submit(read_shard, path, options))
            if len(pending) >= window:
                break
        try:
            while pending:
                chunk = pending.popleft().result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append(pool.submit(read_shard, nxt, options))
                yield chunk
        finally:
            for future in pending:
                future.cancel()
