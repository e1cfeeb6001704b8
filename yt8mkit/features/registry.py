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
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from yt8mkit.errors import Yt8mError

FRAME_MASK = "frame_mask"


class RepresentationError(Yt8mError, ValueError):
    """A representation name or parameter that the registry cannot build."""


class Representation(nn.Module):
    """Base class: ``forward(batch) -> {name: (B, output_dims[name])}``."""

    output_dims: dict[str, int]

    def __init__(self, feature_dims: dict[str, int]) -> None:
        super().__init__()
        if not feature_dims:
            raise RepresentationError("a representation needs at least one frame feature")
        self.feature_dims = {str(k): int(v) for k, v in feature_dims.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def is_fixed(self) -> bool:
        """The same output for a video at every step: no trainable weight, no random
        draw. Such a representation can be computed once (``features.derive``)."""
        return not any(p.requires_grad for p in self.parameters())


class RepresentationParams(BaseModel):
    """Base of every representation's parameters: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


RepresentationClass = TypeVar("RepresentationClass", bound=type[Representation])


@dataclass(frozen=True)
class RepresentationEntry:
    name: str
    builder: Callable[..., Representation]
    params: type[RepresentationParams]


# name -> entry, filled by @register_representation when the modules are imported.
_REGISTRY: dict[str, RepresentationEntry] = {}


def register_representation(
    name: str, params: type[RepresentationParams]
) -> Callable[[RepresentationClass], RepresentationClass]:
    """Class decorator: register ``cls(feature_dims, params)`` under ``name``."""

    def decorate(cls: RepresentationClass) -> RepresentationClass:
        known = _REGISTRY.get(name)
        if known is not None and known.builder is not cls:
            raise RepresentationError(f"representation {name!r} is already registered")
        _REGISTRY[name] = RepresentationEntry(name=name, builder=cls, params=params)
        return cls

    return decorate


def list_representations() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def _entry(name: str) -> RepresentationEntry:
    _import_all()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise RepresentationError(
            f"unknown representation {name!r}; known: {sorted(_REGISTRY)}"
        )
    return entry


def resolve_representation_params(
    name: str, params: dict[str, Any] | BaseModel | None = None
) -> RepresentationParams:
    """``params`` validated against the representation's parameter class."""
    entry = _entry(name)
    if isinstance(params, entry.params):
        return params
    if isinstance(params, BaseModel):
        params = params.model_dump()
    params = dict(params or {})
    unknown = sorted(set(params) - set(entry.params.model_fields))
    if unknown:
        raise RepresentationError(
            f"representation {name!r}: unknown parameter(s) {unknown}; "
            f"valid parameters: {sorted(entry.params.model_fields)}"
        )
    try:
        return entry.params.model_validate(params)
    except ValidationError as error:
        raise RepresentationError(
            f"representation {name!r}: invalid parameters: {error}"
        ) from error


def create_representation(
    name: str,
    feature_dims: dict[str, int],
    params: dict[str, Any] | BaseModel | None = None,
) -> Representation:
    """Build representation ``name`` over frame features ``feature_dims`` (name -> width)."""
    resolved = resolve_representation_params(name, params)
    return _entry(name).builder(dict(feature_dims), resolved)


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


def _import_all() -> None:
    """Registration happens at import; importing the package imports every module, and
    this makes a bare ``from yt8mkit.features.registry import ...`` see them too."""
    import yt8mkit.features  # noqa: F401
