"""The zoo file: named model configs sharing defaults, trained over the same folds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from yt8mkit.config_files import KeyPathError, key_path_error, load, read_yaml_mapping, resolve_path
from yt8mkit.features.config import Init
from yt8mkit.features.registry import RepresentationConfig
from yt8mkit.names import PlainName
from yt8mkit.train.config import FrameDataConfig, TrainConfig


class CentroidsSpec(BaseModel):
    """k-means centroids of the training store's frames (see features/centroids.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    k: int = Field(..., ge=1)
    # Frames sampled for k-means; None: faiss's 256 a centroid, at most 10^6.
    sample_frames: int | None = Field(None, ge=1)
    iterations: int = Field(20, ge=1)
    seed: int = 0
    # Frame features clustered (concatenated); None: all of the store's.
    modalities: list[str] | None = None
    init: Init = "auto"


_DERIVED_OWN = ("features", "frames", "train")


class DerivedSpec(BaseModel):
    """A fixed representation written once into a video-level store, and the video-level
    model trained on it. Any other key of the entry is a training setting (TrainConfig,
    merged over the zoo's defaults as for a model) and is checked when the zoo is read."""

    model_config = ConfigDict(extra="forbid")
    features: RepresentationConfig
    # Which frames the representation reads (max_frames, stride), over the defaults'.
    frames: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _training_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        own = {k: v for k, v in data.items() if k in _DERIVED_OWN}
        rest = {k: v for k, v in data.items() if k not in _DERIVED_OWN}
        if "features" in own and isinstance(own["features"], str):
            own["features"] = {"name": own["features"]}
        if rest:
            own["train"] = {**dict(own.get("train") or {}), **rest}
        return own


def derived_train_config(name: str, spec: DerivedSpec, defaults: dict[str, Any]) -> TrainConfig:
    """The model of a derived entry: the zoo's defaults under the entry's training
    settings; the defaults' ``frames`` apply to the derivation, not to this model."""
    base = {k: v for k, v in defaults.items() if k != "frames"}
    merged = _deep_merge(base, spec.train)
    merged["name"] = name
    try:
        config = TrainConfig.model_validate(merged)
    except ValidationError as err:
        raise key_path_error(f"derived.{name}", err, TrainConfig) from None
    if config.frame_level:
        raise ValueError(
            f"derived.{name}: {config.model.name!r} is a frame-level model; a derived store "
            f"is video-level (use a video-level model such as resnet_like)"
        )
    return config


def derive_frames(spec: DerivedSpec, defaults: dict[str, Any]) -> FrameDataConfig:
    try:
        return FrameDataConfig.model_validate({**dict(defaults.get("frames") or {}),
                                               **spec.frames})
    except ValidationError as err:
        raise key_path_error("frames", err, FrameDataConfig) from None


# ---------------------------------------------------------------- centroid references


def _centroid_refs(node: Any) -> Iterator[tuple[dict, str]]:
    """(dict, key) of every place in a model or representation spec that names centroids:
    ``centroids_resnet_like``'s ``centroids``, a ``centroids`` representation's ``path``."""
    if isinstance(node, dict):
        params = node.get("params")
        if isinstance(params, dict):
            if node.get("name") == "centroids" and isinstance(params.get("path"), str):
                yield params, "path"
            if node.get("name") == "centroids_resnet_like" and isinstance(
                params.get("centroids"), str
            ):
                yield params, "centroids"
        for value in node.values():
            yield from _centroid_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _centroid_refs(value)


def _is_file_name(value: str) -> bool:
    return value.endswith(".npy")


def check_centroid_refs(where: str, spec: Any, declared: dict[str, CentroidsSpec]) -> None:
    """A name that is not a declared entry nor a .npy file is a typo: say so at load."""
    for params, key in _centroid_refs(spec):
        value = params[key]
        if value not in declared and not _is_file_name(value):
            known = ", ".join(sorted(declared)) or "none declared"
            raise ValueError(
                f"{where}: {key}: {value!r} names no entry of the zoo's `centroids:` "
                f"section ({known}) and is no .npy file"
            )


def check_zoo(zoo: ZooConfig) -> None:
    """Everything about the frame-level sections that can be checked without data."""
    clash = sorted(set(zoo.derived) & set(zoo.models))
    if clash:
        raise ValueError(f"derived entries {clash} share their names with models")
    for name, model in zoo.models.items():
        check_centroid_refs(f"models.{name}", model, zoo.centroids)
    for name, spec in zoo.derived.items():
        check_centroid_refs(f"derived.{name}.features", spec.features.model_dump(mode="json"),
                            zoo.centroids)
        derived_train_config(name, spec, zoo.defaults)
        try:
            derive_frames(spec, zoo.defaults)
        except KeyPathError as err:
            raise KeyPathError(f"derived.{name}.{err.path}", err.what) from None


class NeighboursSpec(BaseModel):
    """One nearest-neighbour member (zoo/neighbours.py). Defaults: measured on dev/
    (selection split GAP@20, bench/results/neighbours.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    k: int = Field(50, ge=1)
    # Softmax temperature over the similarities of a video's neighbours: smaller trusts the
    # nearest more (dev/: 0.03 0.660, 0.05 0.684, 0.1 0.685).
    temperature: float = Field(0.1, gt=0.0)
    # Weight of each modality in the concatenation (after its own L2 normalisation); a
    # modality not named weighs 1. On dev/ audio at 0.5 beat 0.3 and 0.7.
    weights: dict[str, float] = Field(default_factory=dict)
    top_k: int = Field(50, ge=20)

    def weight(self, modality: str) -> float:
        return self.weights.get(modality, 1.0)


class ZooConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: PlainName = "zoo"
    store: str | None = None
    test_store: str | None = None
    # Merged under every model's own settings (the model's win).
    defaults: dict[str, Any] = Field(default_factory=dict)
    # name -> TrainConfig fields, or {"config": "path/to/model.yaml", ...overrides}
    models: dict[PlainName, dict[str, Any]]
    retries: int = 1
    # Frame-level inputs the run computes itself (zoo/frame_inputs.py): k-means centroids
    # that models name, and fixed representations written once into derived stores.
    centroids: dict[str, CentroidsSpec] = Field(default_factory=dict)
    derived: dict[str, DerivedSpec] = Field(default_factory=dict)
    # Nearest-neighbour members (zoo/neighbours.py): no training, but a stack member.
    neighbours: dict[PlainName, NeighboursSpec] = Field(default_factory=dict)

    @field_validator("store", "test_store")
    @classmethod
    def _absolute_store(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else resolve_path(value, info)

    @field_validator("models")
    @classmethod
    def _absolute_model_files(cls, models: dict[str, dict[str, Any]], info: ValidationInfo
                              ) -> dict[str, dict[str, Any]]:
        # A model's own config file is named relative to the zoo file; recorded absolute.
        return {name: {**spec, "config": resolve_path(str(spec["config"]), info)}
                if "config" in spec else spec for name, spec in models.items()}

    @model_validator(mode="after")
    def _check_models(self, info: ValidationInfo) -> ZooConfig:
        context = info.context or {}
        if "base" in context:
            self._base = Path(context["base"])
        try:  # the defaults on their own first: a typo there is named there
            TrainConfig.model_validate({"model": {"name": "logistic"}, **self.defaults})
        except ValidationError as err:
            raise key_path_error("defaults", err, TrainConfig) from None
        check_zoo(self)
        clash = sorted(set(self.neighbours) & (set(self.models) | set(self.derived)))
        if clash:
            raise ValueError(f"neighbours entries {clash} share their names with models")
        if not context.get("recorded"):
            # Every model built now: a typo in one fails when the config is read, not
            # when its first job starts (a recorded config holds them resolved).
            self.train_configs()
        return self

    def member_names(self) -> list[str]:
        """Every first-level member: its models, its derived ones, its neighbours."""
        return [*self.models, *self.derived, *self.neighbours]

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> ZooConfig:
        return load(cls, path, overrides)

    def set_base(self, base: Path) -> None:
        """Where model config files named in the zoo are looked up."""
        self._base = base

    # Model config files named in a zoo are relative to the zoo file.
    _base: Path = PrivateAttr(default=Path("."))

    def train_configs(self) -> dict[str, TrainConfig]:
        out = {}
        for name, spec in self.models.items():
            spec = dict(spec)
            merged: dict[str, Any] = _deep_merge({}, self.defaults)
            if "config" in spec:
                file = Path(spec.pop("config"))
                if not file.is_absolute():
                    file = self._base / file
                merged = _deep_merge(merged, read_yaml_mapping(file))
            merged = _deep_merge(merged, spec)
            merged["name"] = name
            try:
                out[name] = TrainConfig.model_validate(merged, context={"base": self._base})
            except ValidationError as err:
                raise key_path_error(f"models.{name}", err, TrainConfig) from None
        return out


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        # Another architecture takes none of the default architecture's parameters.
        if (
            key == "model"
            and isinstance(value, dict)
            and isinstance(result.get(key), dict)
            and value.get("name", result[key].get("name")) != result[key].get("name")
        ):
            result[key] = value
            continue
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = value
    return result
