"""Ingest: TFRecord shards into a store, in parallel, streaming, resumable.

Worker threads each decode one shard (``read_shard``); the calling thread appends
chunks in file order. At most ``2 * workers`` shards are decoded or waiting at any
time, so memory is bounded by a few shards whatever the input size.

Threads, not processes: most of the decoding runs outside the GIL (the C loops of
``native_examples.c``: framing, CRCs, the checks of each record, the copy and float16
cast of the features), so threads overlap on the cores, and no decoded shard is
pickled from one process to another. Measured on ``dev/``, that pickling made the
parent the bottleneck (0.84x TensorFlow with processes); frame-level shards, whose
frames are large, cost the most to pickle. What still holds the GIL is the Python
between the C calls, a few hundred small operations a shard: it, not the cores,
bounds what a second thread gains.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field

from yt8mkit.data.half import casts_natively
from yt8mkit.data.schema import FeatureSchema
from yt8mkit.data.shard import MAX_CLASSES, ShardChunk, ShardOptions, read_shard
from yt8mkit.data.sources import find_sources, resolve_sources
from yt8mkit.data.store import Store, StoreMeta, StoreWriter, is_store_dir
from yt8mkit.data.tfrecord import file_identity
from yt8mkit.errors import BadInputError, Yt8mError
from yt8mkit.locks import exclusive, store_lock_file
from yt8mkit.outputs import check_out_dir

T = TypeVar("T")


class IngestStoppedError(Yt8mError):
    """Writing the store failed for a reason outside the input (disk full, ...)."""


class IngestConfig(BaseModel):
    """Everything that decides what an ingest writes; defaults live here only."""

    workers: int = Field(default_factory=lambda: max(1, min(os.cpu_count() or 1, 8)))
    num_classes: int | None = Field(None, ge=1, le=MAX_CLASSES)
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
        video_dtype=config.video_dtype,
    )


# glibc's mallopt parameters and the largest mmap threshold it accepts (on 64-bit).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20
_GLIBC_DEFAULT = 128 << 10


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse instead of giving it back to the OS.

    Every shard allocates a few arrays of about a MB (features and their casts), above
    glibc's thresholds for mapping fresh pages and for returning them; the page faults
    of touching fresh pages again for every shard cost more than all of the decoding
    (about 1,400 faults, over 2 ms, a shard, when this was measured with processes).
    Memory held stays that of the largest shard, so it is still bounded."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, 4 * _MMAP_THRESHOLD_MAX)


@contextmanager
def _freed_memory_kept() -> Iterator[None]:
    """``_keep_freed_memory`` while ingesting; afterwards glibc's default values (held
    fixed: glibc no longer adjusts them itself) and freed memory returned."""
    _keep_freed_memory()
    try:
        yield
    finally:
        libc = _glibc()
        if libc is not None:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
            libc.malloc_trim(0)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """One PyTorch thread while ingesting, where the float16 casts need PyTorch (see
    half.py): each decoding thread already has a core, and PyTorch's own threads would
    only compete with them (and spin while they wait). The previous setting is
    restored. Elsewhere PyTorch is not even imported."""
    if casts_natively():
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    files, real_paths = find_sources(sources)
    folders = [s for s in sources if os.path.isdir(s)]
    out_path = check_out_dir(out, "store", is_store_dir, folders, real_paths)
    with exclusive(store_lock_file(out_path), f"store {out}"):
        return _ingest_locked(files, real_paths, out_path, config, progress)


def _ingest_locked(
    files: list[str],
    real_paths: list[str],
    out_path: Path,
    config: IngestConfig,
    progress: Progress | None,
) -> StoreMeta:
    options = _options(config)
    key = config.model_dump(exclude={"workers", "resume"})

    def identify(i: int) -> dict:
        return file_identity(real_paths[i]).as_dict()

    writer = StoreWriter(out_path, real_paths, key, config.video_dtype, identify,
                         skip_duplicates=config.skip_corrupt)
    with _freed_memory_kept(), _one_torch_thread():
        return write_chunks(
            writer, lambda start: _decode_in_order(files[start:], options, config.workers),
            config.resume, config.num_classes, out_path, "files", progress)


def write_chunks(writer: StoreWriter, chunks_from: Callable[[int], Iterator[ShardChunk]],
                 resume: bool, num_classes: int | None, out_path: Path, units: str,
                 progress: Callable[[str, int, int], None] | None) -> StoreMeta:
    """Open (or resume) ``writer``, append the checked chunks of the inputs from the first
    one not yet complete, finish. A bad input leaves nothing; any other failure keeps
    what is complete (the journal counts only whole inputs, ``units``) for a rerun."""
    try:
        start = writer.open(resume=resume)
        for chunk in chunks_from(start):
            writer.check_chunk(chunk)
            writer.append(chunk)
            if progress is not None:
                progress(chunk.path, chunk.num_videos, writer.done_files)
        return writer.finish(num_classes)
    except BadInputError:
        writer.abort(keep_partial=False)
        raise
    except OSError as err:
        # A full disk, a file size limit, an input gone: not the input's fault.
        writer.abort(keep_partial=True)
        where = f" ({err.filename})" if err.filename else ""
        raise IngestStoppedError(
            f"ingest into {out_path} stopped: {err.strerror or err}{where}. The {units} "
            f"completed so far are kept; the same command resumes from there once the "
            f"cause is fixed"
        ) from err
    except BaseException:
        writer.abort(keep_partial=True)
        raise


def _decode_in_order(
    files: Sequence[str], options: ShardOptions, workers: int
) -> Iterator[ShardChunk]:
    return map_in_order(lambda path: read_shard(path, options), files, workers, 2 * workers)


def map_in_order(work: Callable[[T], ShardChunk], items: Sequence[T], workers: int,
                 window: int) -> Iterator[ShardChunk]:
    """``work`` of each item, in the items' order, on up to ``workers`` threads (the
    decoders release the GIL), at most ``window`` items decoded or waiting at a time."""
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield work(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[ShardChunk]] = deque()
        queue = iter(items)
        for item in queue:
            pending.append(pool.submit(work, item))
            if len(pending) >= window:
                break
        try:
            while pending:
                chunk = pending.popleft().result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append(pool.submit(work, nxt))
                yield chunk
        finally:
            for future in pending:
                future.cancel()


def open_or_ingest(
    source: Sequence[str | os.PathLike[str]],
    run_dir: Path,
    name: str,
    num_classes: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Store:
    """A store given as the only source is opened; TFRecord files, folders or globs are
    ingested into ``run_dir / name`` (once: a complete store there is reused)."""
    if len(source) == 1 and Store.is_store(source[0]):
        return Store(source[0])
    target = run_dir / name
    if not Store.is_store(target):
        ingest(resolve_sources(source), target, IngestConfig(num_classes=num_classes),
               progress=progress)
    return Store(target)


@contextmanager
def temporary_store(
    source: Sequence[str | os.PathLike[str]],
    beside: Path,
    prefix: str,
    config: IngestConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Store]:
    """A store given as the only source, opened; else TFRecord files, folders or globs
    ingested into a temporary folder in ``beside`` (removed at the end, whatever
    happens): reading them in parallel, checked, costs less than what reads them next.
    ``progress(files done, files)``."""
    if len(source) == 1 and Store.is_store(source[0]):
        yield Store(source[0])
        return
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=beside))
    try:
        files = resolve_sources(source)
        ingest(files, scratch / "store", config or IngestConfig(),
               None if progress is None else lambda path, n, done: progress(done, len(files)))
        yield Store(scratch / "store")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
