"""One registry of named architectures, each built from a typed parameter class.

A model module registers its class with ``@register_model(name, params=ParamsClass)``; the
parameter class (pydantic) is the one place that model's defaults live. Everything else
(trainer, zoo, distillation) builds models only through :func:`create_model`, so a config
names an architecture and overrides some of its defaults, and a typo in a key is an error
that lists the valid keys instead of a silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from yt8mkit.errors import Yt8mError

ModelKind = Literal["video", "frame"]
ModuleClass = TypeVar("ModuleClass", bound=type[nn.Module])


class ModelConfigError(Yt8mError, ValueError):
    """A model name or parameter that the registry cannot build."""


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows of one architecture."""

    name: str
    builder: Callable[..., nn.Module]
    params: type[BaseModel]
    kind: ModelKind


# The one sanctioned module-level table: name -> entry, filled by @register_model at import.
_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, params: type[BaseModel], kind: ModelKind = "video"
) -> Callable[[ModuleClass], ModuleClass]:
    """Class decorator: register ``cls(num_classes, feature_dims, params)`` under ``name``."""

    def decorate(cls: ModuleClass) -> ModuleClass:
        known = _REGISTRY.get(name)
        if known is not None and known.builder is not cls:
            raise ModelConfigError(f"model name {name!r} is already registered by {known.builder}")
        _REGISTRY[name] = ModelEntry(name=name, builder=cls, params=params, kind=kind)
        return cls

    return decorate


def list_models(kind: ModelKind | None = None) -> list[str]:
    """Registered model names (of one kind, if given), sorted."""
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def get_model_entry(name: str) -> ModelEntry:
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ModelConfigError(f"unknown model {name!r}; known models: {list_models()}")
    return entry


def resolve_params(name: str, params: dict[str, Any] | BaseModel | None = None) -> BaseModel:
    """``params`` validated against the model's parameter class, defaults filled in."""
    entry = get_model_entry(name)
    if params is None:
        params = {}
    if isinstance(params, entry.params):
        return params
    if isinstance(params, BaseModel):
        params = params.model_dump()
    if not isinstance(params, dict):
        raise ModelConfigError(
            f"model {name!r}: params must be a mapping, got {type(params).__name__}"
        )
    valid = sorted(entry.params.model_fields)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ModelConfigError(
            f"model {name!r}: unknown parameter(s) {unknown}; valid parameters: {valid}"
        )
    try:
        return entry.params.model_validate(params)
    except ValidationError as error:
        raise ModelConfigError(f"model {name!r}: invalid parameters: {error}") from error


def create_model(
    name: str,
    num_classes: int,
    feature_dims: dict[str, int],
    params: dict[str, Any] | BaseModel | None = None,
) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` outputs over ``feature_dims``
    inputs (name -> width, from the store's meta). Weights draw from torch's global RNG,
    so ``torch.manual_seed`` before this call makes the build reproducible."""
    if num_classes < 1:
        raise ModelConfigError(f"model {name!r}: num_classes must be >= 1, got {num_classes}")
    if not feature_dims:
        raise ModelConfigError(f"model {name!r}: feature_dims is empty")
    resolved = resolve_params(name, params)
    return get_model_entry(name).builder(num_classes, dict(feature_dims), resolved)


class ModelConfig(BaseModel):
    """A model named in a config: the architecture, its parameter overrides, and its kind
    (video- or frame-level), which comes from the registry and is checked if given."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    kind: ModelKind | None = None

    @model_validator(mode="after")
    def _check_against_registry(self) -> ModelConfig:
        entry = get_model_entry(self.name)
        resolve_params(self.name, self.params)
        if self.kind is not None and self.kind != entry.kind:
            raise ModelConfigError(
                f"model {self.name!r} is a {entry.kind}-level model, not {self.kind}-level"
            )
        self.kind = entry.kind
        return self

    def resolved_params(self) -> BaseModel:
        """Every parameter of the model, the config's overrides over the defaults."""
        return resolve_params(self.name, self.params)

    def build(self, num_classes: int, feature_dims: dict[str, int]) -> nn.Module:
        return create_model(self.name, num_classes, feature_dims, self.params)
