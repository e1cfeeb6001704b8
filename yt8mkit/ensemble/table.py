"""The feature rows of every training video, on disk, for the fold models to train from.

Built once block by block (never the whole matrix in memory) and shared by all folds: a
fold model reads the rows of its training videos through :class:`FoldRows`, which fills
the fold's own label frequencies on the way, so LightGBM bins them batch by batch instead
of holding a float copy of its training set.

Layout of ``features/``::

    meta.json         columns, counts, and the key (inputs and settings) it was built for
    table.bin         float32 (rows, columns)
    labels.bin        int32 (rows,)  candidate label of each row
    targets.bin       uint8 (rows,)  1 when the label is one of the video's labels
    indptr.bin        int64 (videos + 1,) rows of video i: indptr[i]:indptr[i+1]
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.ensemble.config import StackConfig
from yt8mkit.ensemble.features import FeatureLayout, build_block, store_labels_block

Progress = Callable[[str, dict], None]


@dataclass
class FeatureTable:
    path: Path
    layout: FeatureLayout
    table: np.ndarray  # memory-mapped (rows, columns) float32
    labels: np.ndarray
    targets: np.ndarray
    indptr: np.ndarray

    @classmethod
    def open(cls, path: Path, layout: FeatureLayout) -> FeatureTable:
        meta = json.loads((path / "meta.json").read_text())
        rows, cols = meta["rows"], len(meta["columns"])

        def load(name: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
            if 0 in shape:
                return np.zeros(shape, dtype)
            return np.memmap(path / name, dtype=dtype, mode="r", shape=shape)

        return cls(
            path=path,
            layout=layout,
            table=load("table.bin", np.float32, (rows, cols)),
            labels=load("labels.bin", np.int32, (rows,)),
            targets=load("targets.bin", np.uint8, (rows,)),
            indptr=np.fromfile(path / "indptr.bin", np.int64),
        )


def _table_key(predictions: dict[str, Predictions], store: Store, config: StackConfig) -> dict:
    return {
        "inputs": {name: str(p.path.resolve()) for name, p in predictions.items()},
        "store": str(store.path.resolve()),
        "num_videos": store.num_videos,
        "top_n": config.top_n,
        "rank_features": config.rank_features,
        "context_features": config.context_features,
    }


def ensure_feature_table(
    predictions: dict[str, Predictions],
    store: Store,
    path: Path,
    layout: FeatureLayout,
    config: StackConfig,
    progress: Progress | None = None,
) -> FeatureTable:
    """The table at ``path``, built unless a complete one for the same inputs is there."""
    key = _table_key(predictions, store, config)
    meta_path = path / "meta.json"
    if meta_path.is_file() and json.loads(meta_path.read_text())["key"] == key:
        return FeatureTable.open(path, layout)
    tmp = path.with_name(f".{path.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    sets = list(predictions.values())
    rows = 0
    indptr = [np.zeros(1, np.int64)]
    with (
        open(tmp / "table.bin", "wb") as table,
        open(tmp / "labels.bin", "wb") as labels,
        open(tmp / "targets.bin", "wb") as targets,
    ):
        for start in range(0, store.num_videos, config.chunk_videos):
            stop = min(start + config.chunk_videos, store.num_videos)
            block = build_block(
                [(np.asarray(p.indices[start:stop]), np.asarray(p.scores[start:stop]))
                 for p in sets],
                layout,
                config.top_n,
                store.num_classes,
                label_freq=None,
                true_labels=store_labels_block(
                    store.labels_indptr, store.labels_indices, start, stop
                ),
            )
            table.write(block.features.tobytes())
            labels.write(block.labels.tobytes())
            assert block.targets is not None
            targets.write(block.targets.tobytes())
            indptr.append(rows + block.indptr[1:])
            rows += block.num_rows
            if progress is not None:
                progress("features", {"videos": stop, "of": store.num_videos, "rows": rows})
    np.concatenate(indptr).tofile(tmp / "indptr.bin")
    (tmp / "meta.json").write_text(
        json.dumps({"key": key, "rows": rows, "columns": layout.columns}, indent=2)
    )
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return FeatureTable.open(path, layout)


class FoldRows(lgb.Sequence):
    """Some rows of the table, as LightGBM reads them (single rows to sample bin edges,
    then slices), with the label-frequency column filled from one fold's training videos."""

    def __init__(
        self, table: FeatureTable, rows: np.ndarray, label_freq: np.ndarray, batch_size: int
    ) -> None:
        self.source = table
        self.rows = np.asarray(rows, np.int64)
        self.freq = np.asarray(label_freq, np.float32)
        self.freq_column = table.layout.freq_column
        self.batch_size = batch_size
        # LightGBM samples bin edges one row at a time, in ascending order: serve those
        # from the block around the row instead of one memory-map read each.
        self._cached = (0, np.zeros((0, table.layout.num_features), np.float64))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: int | slice | list[int]) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            start, block = self._cached
            if not start <= idx < start + len(block):
                # float64: what LightGBM wants for sampled rows.
                block = self._read(self.rows[idx : idx + self.batch_size]).astype(np.float64)
                start = int(idx)
                self._cached = (start, block)
            return block[idx - start]
        return self._read(self.rows[idx])

    def _read(self, rows: np.ndarray) -> np.ndarray:
        block = np.array(self.source.table[rows], np.float32)
        block[:, self.freq_column] = self.freq[self.source.labels[rows]]
        return block
