"""Ingesting Parquet or NumPy embeddings into a store: the source a set of inputs needs
(``open_source``) and the ingest itself, over the checks of ``embeddings.py``. Apart from
``embeddings.py`` so that the sources (``parquet_source.py``, ``numpy_source.py``), which
build on it, are not imported by it (no cycle)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence

from yt8mkit.data.embeddings import (
    EmbeddingOptions,
    Progress,
    Source,
    Unit,
    detect_format,
    names_index,
    to_chunk,
)
from yt8mkit.data.ingest import map_in_order, write_chunks
from yt8mkit.data.shard import ShardChunk
from yt8mkit.data.store import StoreMeta, StoreWriter, is_store_dir
from yt8mkit.data.vocabulary import Vocabulary, load_vocabulary
from yt8mkit.errors import BadInputError
from yt8mkit.locks import exclusive, store_lock_file
from yt8mkit.outputs import check_out_dir


def open_source(sources: Sequence[str | os.PathLike[str]], options: EmbeddingOptions,
                vocabulary: Vocabulary | None) -> Source:
    kind = detect_format(sources)
    if kind == "parquet":  # pyarrow is imported for Parquet only
        from yt8mkit.data.parquet_source import ParquetSource

        return ParquetSource(sources, options, vocabulary)
    if kind == "numpy":
        from yt8mkit.data.numpy_source import NumpySource

        return NumpySource(sources, options, vocabulary)
    raise BadInputError(", ".join(map(str, sources)), "not Parquet or NumPy embeddings")


def ingest_embeddings(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: EmbeddingOptions | None = None,
    progress: Progress | None = None,
    on_units: Callable[[int], None] | None = None,
) -> StoreMeta:
    """Write the store ``out`` from Parquet files or NumPy arrays: the same store, checks,
    journal, lock and resume as ``ingest.ingest`` of TFRecords. ``on_units`` is told
    the number of units before any is read (a progress bar's total)."""
    options = options or EmbeddingOptions()
    vocabulary = load_vocabulary(options.vocabulary) if options.vocabulary else None
    source = open_source(sources, options, vocabulary)
    units = source.units()
    if on_units is not None:
        on_units(len(units))
    out_path = check_out_dir(out, "store", is_store_dir, source.folders, source.paths)
    num_classes = options.num_classes
    if num_classes is None and vocabulary is not None:
        num_classes = max(vocabulary.names) + 1
    checked = options.model_copy(update={"num_classes": num_classes})
    key = {**checked.model_dump(exclude={"workers", "resume"}), "format": type(source).__name__,
           "vocabulary": None if vocabulary is None else hashlib.sha256(
               json.dumps(sorted(vocabulary.names.items())).encode()).hexdigest()}
    index = names_index(vocabulary)

    def work(unit: Unit) -> ShardChunk:
        return to_chunk(source.read(unit), checked, vocabulary, index)

    with exclusive(store_lock_file(out_path), f"store {out}"):
        writer = StoreWriter(out_path, [u.path for u in units], key, options.video_dtype,
                             lambda i: source.identity(units[i]).as_dict(),
                             skip_duplicates=options.skip_corrupt)
        workers = 1 if source.sequential else options.workers
        return write_chunks(writer, lambda start: _in_order(work, units[start:], workers),
                            options.resume, num_classes, out_path, "units", progress)


def _in_order(work: Callable[[Unit], ShardChunk], units: Sequence[Unit],
              workers: int) -> Iterator[ShardChunk]:
    """``work`` of each unit, in order, at most ``workers + 1`` units decoded or waiting
    at a time (pyarrow and numpy release the GIL): a unit can be a large row group, so
    fewer than TFRecord ingest's ``2 * workers``."""
    return map_in_order(work, units, workers, workers + 1)
