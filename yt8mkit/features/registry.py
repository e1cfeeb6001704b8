"""A registry of frame representations: modules that turn a frame batch into video-level
vectors, so that a video-level head (ResNet-like, MLP) can read frame-level data.

A representation registers with ``@register_representation(name, params=ParamsClass)``; it
is built as ``cls(feature_dims, params)`` and maps a frame batch ({modality: (B, T, D)
float, "frame_mask": (B, T) bool}) to {output name: (B, D')}, with ``output_dims`` (name ->
D') known at build time. Output names are usually the modalities themselves; padding never
changes an output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yt8mkit.registry import Registry, RegistryError

if TYPE_CHECKING:
    from yt8mkit.features.base import Representation

FRAME_MASK = "frame_mask"


class RepresentationError(RegistryError):
    """A representation name or parameter that the registry cannot build."""


class RepresentationParams(BaseModel):
    """Base of every representation's parameters: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


RepresentationClass = TypeVar("RepresentationClass", bound=type)

# The built-in representations, registered when the first one is looked up (they import
# torch, faiss, pywt; this module does not).
REPRESENTATIONS: Registry[Any] = Registry("representation", RepresentationError, modules=[
    f"yt8mkit.features.{name}"
    for name in ("centroids", "combinations", "dynamics", "statistics", "subsampling")
])


def register_representation(
    name: str, params: type[RepresentationParams]
) -> Callable[[RepresentationClass], RepresentationClass]:
    """Class decorator: register ``cls(feature_dims, params)`` under ``name``."""
    return REPRESENTATIONS.register(name, params)


def list_representations() -> list[str]:
    return REPRESENTATIONS.names()


def resolve_representation_params(
    name: str, params: dict[str, Any] | BaseModel | None = None
) -> RepresentationParams:
    """``params`` validated against the representation's parameter class."""
    return cast(RepresentationParams, REPRESENTATIONS.resolve(name, params))


def create_representation(
    name: str,
    feature_dims: dict[str, int],
    params: dict[str, Any] | BaseModel | None = None,
) -> Representation:
    """Build representation ``name`` over frame features ``feature_dims`` (name -> width)."""
    return cast("Representation",
                REPRESENTATIONS.build(name, dict(feature_dims), params=params))


class RepresentationConfig(BaseModel):
    """A representation named in a model's config, checked against the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "statistics"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RepresentationConfig:
        resolve_representation_params(self.name, self.params)
        return self

    def build(self, feature_dims: dict[str, int]) -> Representation:
        return create_representation(self.name, feature_dims, self.params)
