"""Global frame centroids (paper, Sec. 2, point 3; Table 1 row 14: 10,000 clusters).

k-means over frames sampled from the whole store (faiss), then a representation that
replaces a video's frames by their nearest centroids and describes the *set* of unique
centroids it visits: the mean (and optionally the std) of those centroid vectors, split
back per modality, and a bag of centroids (share of the video's frames nearest each
centroid).

Centroids live in the space of the concatenated dequantized frame features of the
modalities they were fit on; ``<name>.npy`` holds the (k, D) float32 array and
``<name>.json`` next to it says which modalities, in which order, and how it was fit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from yt8mkit.data.quantize import BIAS, SCALAR
from yt8mkit.data.store import Store
from yt8mkit.features.base import Representation
from yt8mkit.features.config import Init
from yt8mkit.features.faiss_blas import faiss
from yt8mkit.features.masking import frame_tensors
from yt8mkit.features.registry import (
    RepresentationError,
    RepresentationParams,
    register_representation,
)

# (stage, done, total): stage "sample" counts frames read, "kmeans" iterations run.
CentroidProgress = Callable[[str, int, int], None]
# Frames read from the memory map per step while sampling: a few hundred MB at 1152-d.
_READ_CHUNK = 65_536
# Default sample: faiss's own cap of 256 frames a centroid, but at most 10^6 frames
# (4.6 GB at 1152-d) unless that leaves fewer than faiss's minimum of 39 a centroid.
_POINTS_PER_CENTROID = 256
_MIN_POINTS_PER_CENTROID = 40
_MAX_DEFAULT_SAMPLE = 1_000_000


def default_centroids_path(store_path: str | os.PathLike[str], k: int) -> Path:
    return Path(store_path) / f"centroids_{k}.npy"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def read_frame_sample(
    store: Store,
    count: int,
    modalities: list[str],
    seed: int,
    progress: CentroidProgress | None = None,
) -> np.ndarray:
    """``count`` frames drawn uniformly without replacement from the whole store, as
    float32 (count, sum of dims), in store order. Only the drawn frames are read: sorted
    indices walk the memory maps forwards, a chunk at a time."""
    total = store.meta.num_frames
    count = min(count, total)
    rng = np.random.default_rng([seed, 0xC3])
    picked = np.sort(rng.choice(total, size=count, replace=False))
    dims = [store.dims[m] for m in modalities]
    out = np.empty((count, sum(dims)), np.float32)
    maps = [store.frame_features(m) for m in modalities]
    for start in range(0, count, _READ_CHUNK):
        index = picked[start : start + _READ_CHUNK]
        column = 0
        for source, dim in zip(maps, dims):
            part = out[start : start + len(index), column : column + dim]
            np.multiply(source[index], SCALAR, out=part, dtype=np.float32)
            np.add(part, BIAS, out=part)
            column += dim
        if progress is not None:
            progress("sample", start + len(index), count)
    return out


# k-means++ makes k sequential passes over its pool of points: affordable up to about a
# thousand centroids; beyond, random points (faiss's own init) are the practical choice.
_KMEANS_PP_MAX_K = 1024
_KMEANS_PP_POOL_PER_CENTROID = 16


def initial_centroids(points: np.ndarray, k: int, init: Init, seed: int) -> np.ndarray:
    """k starting centroids: distinct random points, or k-means++ (Arthur & Vassilvitskii
    2007) over a random pool of 16 points a centroid, which rarely starts two centroids
    in one cluster and so avoids the local minima that random starts fall into."""
    rng = np.random.default_rng([seed, 0x5EED])
    n = points.shape[0]
    if init == "auto":
        init = "kmeans++" if k <= _KMEANS_PP_MAX_K else "random"
    if init == "random":
        return np.ascontiguousarray(points[np.sort(rng.choice(n, size=k, replace=False))])
    pool_size = min(n, max(_KMEANS_PP_POOL_PER_CENTROID * k, 4096))
    pool = points[np.sort(rng.choice(n, size=pool_size, replace=False))].astype(np.float64)
    chosen = [int(rng.integers(pool_size))]
    nearest = ((pool - pool[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:  # fewer distinct points than k: fill with unused ones
            unused = np.setdiff1d(np.arange(pool_size), chosen)
            chosen.append(int(unused[0]))
        else:
            chosen.append(int(rng.choice(pool_size, p=nearest / total)))
        nearest = np.minimum(nearest, ((pool - pool[chosen[-1]]) ** 2).sum(axis=1))
    return np.ascontiguousarray(pool[chosen], dtype=np.float32)


def kmeans(
    points: np.ndarray,
    k: int,
    *,
    iterations: int,
    seed: int,
    init: Init = "auto",
    progress: CentroidProgress | None = None,
) -> np.ndarray:
    """Lloyd's k-means with faiss, one faiss step per iteration so progress can be shown;
    faiss re-seeds empty clusters by splitting large ones. Deterministic for a given
    seed and input (see ``initial_centroids`` for ``init``)."""
    n, dim = points.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= points, got k={k} and {n} points")
    points = np.ascontiguousarray(points, dtype=np.float32)
    centroids = initial_centroids(points, k, init, seed)
    for it in range(iterations):
        clustering = faiss.Clustering(dim, k)
        clustering.niter = 1
        clustering.seed = seed + it
        # The sample is already what we want to fit: no subsampling, no size warnings.
        clustering.max_points_per_centroid = n
        clustering.min_points_per_centroid = 1
        faiss.copy_array_to_vector(centroids.ravel(), clustering.centroids)
        clustering.train(points, faiss.IndexFlatL2(dim))
        centroids = faiss.vector_to_array(clustering.centroids).reshape(k, dim)
        if progress is not None:
            progress("kmeans", it + 1, iterations)
    return centroids.astype(np.float32, copy=False)


def sample_size(k: int, total_frames: int, requested: int | None = None) -> int:
    """Frames to sample for k centroids: ``requested``, or the default (see fit_centroids),
    never more than the store holds."""
    if requested is None:
        requested = min(
            _POINTS_PER_CENTROID * k, max(_MAX_DEFAULT_SAMPLE, _MIN_POINTS_PER_CENTROID * k)
        )
    return min(requested, total_frames)


def fit_centroids(
    store: Store,
    k: int,
    *,
    sample_frames: int | None = None,
    iterations: int = 20,
    seed: int = 0,
    progress: CentroidProgress | None = None,
    modalities: list[str] | None = None,
    init: Init = "auto",
) -> np.ndarray:
    """(k, D) centroids of frames sampled from ``store`` (D: the concatenated dims of
    ``modalities``, all of the store's by default). The default sample is 256 frames a
    centroid, capped at 10^6 frames (but at least 40 a centroid) and at the store's."""
    if not store.has_frames:
        raise ValueError(f"{store.path}: a video-level store has no frames to cluster")
    modalities = list(modalities or store.modalities)
    missing = [m for m in modalities if m not in store.dims]
    if missing:
        raise ValueError(f"{store.path}: no frame features {missing}; has {store.modalities}")
    count = sample_size(k, store.meta.num_frames, sample_frames)
    points = read_frame_sample(store, count, modalities, seed, progress)
    return kmeans(points, k, iterations=iterations, seed=seed, init=init, progress=progress)


def save_centroids(centroids: np.ndarray, path: str | os.PathLike[str], info: dict) -> Path:
    """Write ``path`` (.npy) and its .json description, each atomically."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"{path}: centroids are saved as .npy")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(centroids, np.float32))
    os.replace(tmp, path)
    meta_tmp = path.with_name(f".{path.stem}.json.tmp")
    meta_tmp.write_text(json.dumps(info, indent=2))
    os.replace(meta_tmp, _meta_path(path))
    return path


def load_centroids(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict]:
    """The (k, D) float32 centroids and their description ({} if there is no .json)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no centroids file (run `yt8m centroids STORE`)")
    centroids = np.load(path)
    if centroids.ndim != 2 or centroids.dtype != np.float32:
        raise ValueError(f"{path}: expected a (k, D) float32 array, got "
                         f"{centroids.dtype} {centroids.shape}")
    meta = _meta_path(path)
    return centroids, json.loads(meta.read_text()) if meta.is_file() else {}


def run_centroids(
    store_path: str | os.PathLike[str],
    k: int,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    progress: CentroidProgress | None = None,
    *,
    sample_frames: int | None = None,
    iterations: int = 20,
    modalities: list[str] | None = None,
    init: Init = "auto",
) -> Path:
    """Fit and save centroids of a store (``yt8m centroids STORE --k K``); the default
    output is ``centroids_<k>.npy`` in the store. Returns the written path."""
    store = Store(store_path)
    modalities = list(modalities or store.modalities)
    started = time.perf_counter()
    centroids = fit_centroids(
        store, k, sample_frames=sample_frames, iterations=iterations, seed=seed,
        progress=progress, modalities=modalities, init=init,
    )
    path = Path(out) if out is not None else default_centroids_path(store.path, k)
    info = {
        "k": k,
        "modalities": modalities,
        "dims": {m: store.dims[m] for m in modalities},
        "seed": seed,
        "iterations": iterations,
        "init": init,
        "sample_frames": sample_size(k, store.meta.num_frames, sample_frames),
        "store": str(store.path),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return save_centroids(centroids, path, info)


# ---------------------------------------------------------------- representation

CentroidStat = Literal["mean", "std"]


class CentroidParams(RepresentationParams):
    path: str = Field(..., min_length=1, description="centroids .npy (from `yt8m centroids`)")
    stats: list[CentroidStat] = Field(default_factory=lambda: list[CentroidStat](["mean"]))
    # Bag of centroids: the share of the video's frames nearest each centroid, output as
    # its own (B, k) input named ``bag``.
    bag: bool = True
    # Frames whose distances to all centroids are computed at once (memory: chunk x k).
    chunk_frames: int = Field(4096, ge=1)

    @field_validator("stats")
    @classmethod
    def _distinct(cls, value: list[CentroidStat]) -> list[CentroidStat]:
        if len(set(value)) != len(value):
            raise ValueError(f"stats must not repeat, got {value}")
        return value


BAG = "bag"


def nearest_centroids(
    x: torch.Tensor, centroids: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """Index of the nearest centroid (L2, as k-means) of each row of (N, D) x, int64 (N,)."""
    sq = (centroids * centroids).sum(dim=1)
    out = []
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        # ||x||^2 is the same for every centroid, so it does not change the argmin.
        out.append((sq[None, :] - 2.0 * part @ centroids.T).argmin(dim=1))
    if not out:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    return torch.cat(out)


@register_representation("centroids", params=CentroidParams)
class CentroidFeatures(Representation):
    centroids: torch.Tensor  # a registered buffer

    def __init__(self, feature_dims: dict[str, int], params: CentroidParams) -> None:
        super().__init__(feature_dims)
        if not params.stats and not params.bag:
            raise RepresentationError("centroids: give at least one of stats and bag")
        centroids, info = load_centroids(params.path)
        self.params = params
        self.space = self._space(centroids, info, params.path)
        # A buffer, so a checkpoint (and an export) carries the centroids with it.
        self.register_buffer("centroids", torch.from_numpy(centroids))
        k = centroids.shape[0]
        self.output_dims = {m: len(params.stats) * d for m, d in self.space.items()}
        if not params.stats:
            self.output_dims = {}
        if params.bag:
            self.output_dims[BAG] = k

    def _space(self, centroids: np.ndarray, info: dict, path: str) -> dict[str, int]:
        """The modalities (name -> dim, in column order) the centroids were fit on."""
        dims = info.get("dims") or dict(self.feature_dims)  # no .json: all, in order
        missing = [m for m in dims if m not in self.feature_dims]
        if missing:
            raise RepresentationError(
                f"{path}: centroids of {list(dims)} but the data has {list(self.feature_dims)}"
            )
        if any(self.feature_dims[m] != d for m, d in dims.items()) or sum(
            dims.values()
        ) != centroids.shape[1]:
            raise RepresentationError(
                f"{path}: centroids are {centroids.shape[1]}-d over {dims}; the data's "
                f"features are {self.feature_dims}"
            )
        return {m: int(d) for m, d in dims.items()}

    def assign(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) nearest centroid of each frame (0 on padding) and the frame mask."""
        tensors, mask = frame_tensors(batch, list(self.space))
        x = torch.cat(tensors, dim=2)
        nearest = torch.zeros(mask.shape, dtype=torch.long, device=x.device)
        nearest[mask] = nearest_centroids(
            x[mask].to(self.centroids.dtype), self.centroids, self.params.chunk_frames
        )
        return nearest, mask

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        nearest, mask = self.assign(batch)
        k = self.centroids.shape[0]
        counts = torch.zeros(mask.shape[0], k, dtype=self.centroids.dtype, device=mask.device)
        counts.scatter_add_(1, nearest, mask.to(counts.dtype))
        out: dict[str, torch.Tensor] = {}
        if self.params.stats:
            present = (counts > 0).to(counts.dtype)
            unique = present.sum(dim=1, keepdim=True).clamp(min=1.0)
            mean = present @ self.centroids / unique
            parts = {"mean": mean}
            if "std" in self.params.stats:
                second = present @ (self.centroids * self.centroids) / unique
                parts["std"] = (second - mean * mean).clamp(min=0.0).sqrt()
            column = 0
            for name, dim in self.space.items():
                out[name] = torch.cat(
                    [parts[s][:, column : column + dim] for s in self.params.stats], dim=1
                )
                column += dim
        if self.params.bag:
            out[BAG] = counts / counts.sum(dim=1, keepdim=True).clamp(min=1.0)
        return out
