"""Frame-level inputs a zoo computes for itself: k-means centroids and derived stores.

A zoo config may declare, next to ``models``::

    centroids:            # k-means over the training store's frames (yt8m centroids)
      frames256: {k: 256, iterations: 20, seed: 0}
    models:
      centroids_resnet_like:
        model: {name: centroids_resnet_like, params: {centroids: frames256}}
    derived:              # a fixed representation computed once per video (yt8m represent)
      pcp_resnet_like:    # into a video-level store, and a video-level model trained there
        features: {name: dynamics, params: {method: pcp}}
        frames: {max_frames: 300, stride: 1}      # which frames the representation reads
        model: {name: resnet_like, params: {inner_size: 256}}   # + any TrainConfig field

A model's ``centroids`` parameter, or the ``path`` of a ``centroids`` representation
(in ``features`` of a model or of a derived entry), names an entry of ``centroids:``
(or a .npy file). Both sections are checked when the config is read.

Where they are written (``work_dir``: the pipeline's run directory, or a zoo run's)::

    centroids/NAME.npy (+ .json)        fitted once; a rerun with the same settings skips it
    derived/NAME/spec.json              what the stores below hold
    derived/NAME/store, test_store      the representation of the training (and test) store

Both are unsupervised (no label is read), so fitting them over every training video,
the selection split included, leaks nothing into the folds. A derived store keeps the
source's ids, order, labels and folds (the selection split too): its models' out-of-fold
predictions are aligned row for row with the main store, which the stack relies on;
``prepare_zoo`` checks it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError
from yt8mkit.features.registry import RepresentationConfig
from yt8mkit.models.registry import ModelConfig
from yt8mkit.train.config import FrameDataConfig, TrainConfig
from yt8mkit.zoo.config import (
    CentroidsSpec,
    ZooConfig,
    _centroid_refs,
    check_centroid_refs,
    derive_frames,
    derived_train_config,
)

Report = Callable[[str], None]


def _resolve(spec: Any, paths: dict[str, str]) -> Any:
    """A copy of ``spec`` with centroid names replaced by their files."""
    copy = json.loads(json.dumps(spec))
    for params, key in _centroid_refs(copy):
        if params[key] in paths:
            params[key] = paths[params[key]]
    return copy


def _resolve_config(config: TrainConfig, paths: dict[str, str]) -> TrainConfig:
    model = config.model.model_dump(mode="json")
    resolved = _resolve(model, paths)
    if resolved == model:
        return config
    return config.model_copy(update={"model": ModelConfig.model_validate(resolved)})


# ---------------------------------------------------------------- preparing a run


@dataclass
class ZooPlan:
    """What ``run_zoo`` trains: every model's config (centroid names resolved to files),
    and, for the models of derived entries, the stores they read instead of the main one."""

    configs: dict[str, TrainConfig]
    stores: dict[str, str] = field(default_factory=dict)
    test_stores: dict[str, str] = field(default_factory=dict)
    # derived model -> the representation it was trained on
    derived: dict[str, dict] = field(default_factory=dict)

    def annotate(self, metrics: dict[str, dict]) -> None:
        """Mark derived models in a zoo's metrics: their inputs are frames."""
        for name, features in self.derived.items():
            if name in metrics:
                metrics[name]["derived_from_frames"] = features


def prepare_zoo(
    zoo: ZooConfig,
    store: Store,
    test_store: Store | None,
    work_dir: Path,
    report: Report | None = None,
) -> ZooPlan:
    """Fit the zoo's centroids and write its derived stores (each once: complete ones are
    checked and kept), and return the configs and stores ``run_zoo`` trains on."""
    say = report or (lambda message: None)
    used = zoo.centroids
    if used and not store.has_frames:
        raise Yt8mError(f"{store.path}: the zoo's centroids need a frame-level store")
    paths = {name: str(_fit_centroids(store, name, spec, work_dir / "centroids", say))
             for name, spec in used.items()}
    if zoo.derived:
        from yt8mkit.train.run import store_folds

        store_folds(store)  # the folds the derived stores copy (written if there are none)
    configs = {name: _resolve_config(config, paths)
               for name, config in zoo.train_configs().items()}
    plan = ZooPlan(configs=configs)
    for name, spec in zoo.derived.items():
        features = RepresentationConfig.model_validate(
            _resolve(spec.features.model_dump(mode="json"), paths))
        frames = derive_frames(spec, zoo.defaults)
        base = work_dir / "derived" / name
        plan.stores[name] = str(_derived_store(store, features, frames, base, "store", say).path)
        if test_store is not None:
            plan.test_stores[name] = str(
                _derived_store(test_store, features, frames, base, "test_store", say).path)
        plan.configs[name] = _resolve_config(derived_train_config(name, spec, zoo.defaults),
                                             paths)
        plan.derived[name] = features.model_dump(mode="json")
    for name, config in plan.configs.items():
        check_centroid_refs(f"model {name}", config.model.model_dump(mode="json"), {})
    return plan


def _fit_centroids(store: Store, name: str, spec: CentroidsSpec, out: Path,
                   say: Report) -> Path:
    from yt8mkit.features.centroids import run_centroids, sample_size

    path = out / f"{name}.npy"
    modalities = list(spec.modalities or store.modalities)
    wanted = {"k": spec.k, "modalities": modalities, "seed": spec.seed,
              "iterations": spec.iterations, "init": spec.init,
              "sample_frames": sample_size(spec.k, store.meta.num_frames, spec.sample_frames)}
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        if {k: info.get(k) for k in wanted} != wanted:
            raise Yt8mError(f"{path}: fitted with other settings than centroids.{name}; "
                            f"use a new run directory")
        say(f"centroids {name}: complete, skipped")
        return path
    say(f"centroids {name}: k-means, k={spec.k}, {wanted['sample_frames']:,} frames of "
        f"{'+'.join(modalities)}")
    return run_centroids(store.path, spec.k, path, spec.seed, sample_frames=spec.sample_frames,
                         iterations=spec.iterations, modalities=modalities, init=spec.init)


def _derived_store(source: Store, features: RepresentationConfig, frames: FrameDataConfig,
                   base: Path, kind: str, say: Report) -> Store:
    from yt8mkit.features.derive import derive_store

    spec = {"features": features.model_dump(mode="json"), "max_frames": frames.max_frames,
            "stride": frames.stride}
    spec_path = base / "spec.json"
    if spec_path.is_file() and json.loads(spec_path.read_text()) != spec:
        raise Yt8mError(f"{base}: holds another representation than this config's; "
                        f"use a new run directory")
    base.mkdir(parents=True, exist_ok=True)
    if not spec_path.is_file():
        tmp = base / ".spec.json.tmp"
        tmp.write_text(json.dumps(spec, indent=2))
        os.replace(tmp, spec_path)
    path = base / kind
    if Store.is_store(path):
        say(f"derived {base.name}/{kind}: complete, skipped")
        derived = Store(path)
    else:
        say(f"derived {base.name}/{kind}: {features.name} of {source.num_videos:,} videos")
        derived = derive_store(source, features, path, max_frames=frames.max_frames,
                               stride=frames.stride)
    check_aligned(source, derived)
    return derived


def check_aligned(source: Store, derived: Store) -> None:
    """The derived store must be the source row for row: ids, labels and folds (the
    selection split included), so its predictions can stand beside the source's. Folds
    are copied over when they differ (the source's were rewritten)."""
    if derived.num_videos != source.num_videos or derived.ids() != source.ids():
        raise Yt8mError(f"{derived.path}: its videos are not {source.path}'s, in order")
    if derived.num_classes != source.num_classes or not (
        np.array_equal(np.asarray(derived.labels_indptr), np.asarray(source.labels_indptr))
        and np.array_equal(np.asarray(derived.labels_indices),
                           np.asarray(source.labels_indices))
    ):
        raise Yt8mError(f"{derived.path}: its labels are not {source.path}'s")
    folds = source.path / "folds.bin"
    if not folds.is_file():
        return
    mine = derived.path / "folds.bin"
    if mine.is_file() and np.array_equal(np.fromfile(mine, np.int8), source.folds()):
        return
    for file in ("folds.bin", "folds.json"):
        tmp = derived.path / f".{file}.tmp"
        tmp.write_bytes((source.path / file).read_bytes())
        os.replace(tmp, derived.path / file)
