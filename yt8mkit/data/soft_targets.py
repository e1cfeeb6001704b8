"""A soft-label set: a sparse videos x classes matrix of training targets in [0, 1]
(CSR), stored as ``indptr.npy`` int64 (n+1), ``indices.npy`` int32, ``values.npy``
float32 and ``meta.json``, written to a temporary directory and renamed into place.

Distillation builds them from the ensemble's out-of-fold scores
(:mod:`yt8mkit.distill.soft_labels`); any model trains on them through its config's
``soft_labels`` (a first-level zoo member on an earlier ensemble's soft labels, as the
paper's "ResNetLike + soft labels").
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from yt8mkit.errors import Yt8mError
from yt8mkit.metrics.topk import csr_entries


class SoftLabelsMeta(BaseModel):
    num_videos: int
    num_classes: int
    blend: float
    temperature: float = 1.0
    source: str | None = None

    def options(self) -> tuple[float, float]:
        return (self.blend, self.temperature)


@dataclass
class SoftLabels:
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    meta: SoftLabelsMeta

    @property
    def num_videos(self) -> int:
        return self.meta.num_videos

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    def __len__(self) -> int:
        return self.num_videos

    def dense(self, rows: np.ndarray | slice) -> np.ndarray:
        """float32 (len(rows), num_classes) targets of the given rows, in their order."""
        rows = np.arange(self.num_videos)[rows] if isinstance(rows, slice) else np.asarray(rows)
        which, entries = csr_entries(self.indptr, rows)
        out = np.zeros((len(rows), self.num_classes), np.float32)
        out[which, np.asarray(self.indices[entries])] = self.values[entries]
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        tmp = out.with_name(f".{out.name}.partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        np.save(tmp / "indptr.npy", self.indptr)
        np.save(tmp / "indices.npy", self.indices)
        np.save(tmp / "values.npy", self.values)
        (tmp / "meta.json").write_text(self.meta.model_dump_json(indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SoftLabels:
        src = Path(path)
        if not (src / "meta.json").is_file():
            raise Yt8mError(f"{src}: not a soft-label set (no meta.json)")
        meta = SoftLabelsMeta.model_validate_json((src / "meta.json").read_text())
        return cls(
            indptr=np.load(src / "indptr.npy", mmap_mode="r"),
            indices=np.load(src / "indices.npy", mmap_mode="r"),
            values=np.load(src / "values.npy", mmap_mode="r"),
            meta=meta,
        )
