"""One registry of named architectures, each built from a typed parameter class.

A model module registers its class with ``@register_model(name, params=ParamsClass)``; the
parameter class (pydantic) is the one place that model's defaults live. Everything else
(trainer, zoo, distillation) builds models only through :func:`create_model`, so a config
names an architecture and overrides some of its defaults, and a typo in a key is an error
that lists the valid keys instead of a silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yt8mkit.registry import Entry, Registry, RegistryError

if TYPE_CHECKING:
    from torch import nn

ModelKind = Literal["video", "frame"]
ModuleClass = TypeVar("ModuleClass", bound=type)


class ModelConfigError(RegistryError):
    """A model name or parameter that the registry cannot build."""


# The built-in architectures, registered when the first model is looked up (they import
# torch; the registry and ModelConfig do not).
MODELS: Registry[Any] = Registry("model", ModelConfigError, modules=[
    f"yt8mkit.models.{name}" for name in (
        "frame_attention", "frame_bow", "frame_features", "frame_recurrent",
        "frame_timedistributed", "logistic", "moe", "resnet_like", "student_mlp")
])
ModelEntry = Entry


def register_model(
    name: str, params: type[BaseModel], kind: ModelKind = "video"
) -> Callable[[ModuleClass], ModuleClass]:
    """Class decorator: register ``cls(num_classes, feature_dims, params)`` under ``name``."""
    return MODELS.register(name, params, kind=kind)


def list_models(kind: ModelKind | None = None) -> list[str]:
    """Registered model names (of one kind, if given), sorted."""
    return sorted(n for n, e in MODELS.entries().items() if kind is None or e.kind == kind)


def get_model_entry(name: str) -> Entry:
    return MODELS.get(name)


def resolve_params(name: str, params: dict[str, Any] | BaseModel | None = None) -> BaseModel:
    """``params`` validated against the model's parameter class, defaults filled in."""
    return MODELS.resolve(name, params)


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
    return cast("nn.Module", MODELS.build(name, num_classes, dict(feature_dims), params=params))


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
        self.kind = cast(ModelKind, entry.kind)
        return self

    def resolved_params(self) -> BaseModel:
        """Every parameter of the model, the config's overrides over the defaults."""
        return resolve_params(self.name, self.params)

    def build(self, num_classes: int, feature_dims: dict[str, int]) -> nn.Module:
        return create_model(self.name, num_classes, feature_dims, self.params)
