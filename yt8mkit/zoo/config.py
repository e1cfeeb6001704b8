"""The zoo file: named model configs sharing defaults, trained over the same folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from yt8mkit.config_files import read_yaml_mapping
from yt8mkit.names import PlainName
from yt8mkit.train.config import TrainConfig
from yt8mkit.zoo.frame_inputs import CentroidsSpec, DerivedSpec, check_zoo
from yt8mkit.zoo.neighbours import NeighboursSpec


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

    @model_validator(mode="after")
    def _check_frame_inputs(self) -> ZooConfig:
        check_zoo(self)
        clash = sorted(set(self.neighbours) & (set(self.models) | set(self.derived)))
        if clash:
            raise ValueError(f"neighbours entries {clash} share their names with models")
        return self

    def member_names(self) -> list[str]:
        """Every first-level member: its models, its derived ones, its neighbours."""
        return [*self.models, *self.derived, *self.neighbours]

    @classmethod
    def from_yaml(cls, path: str | Path) -> ZooConfig:
        path = Path(path)
        data = read_yaml_mapping(path)
        zoo = cls.model_validate(data)
        zoo.set_base(path.parent)
        return zoo

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
                out[name] = TrainConfig.model_validate(merged)
            except ValidationError as err:
                raise ValueError(f"zoo.models.{name}: {err}") from None
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
