"""One registry class for everything a config names and the code builds: models
(``models/registry.py``) and frame representations (``features/registry.py``).

An entry is a builder (a class) and the pydantic class of its parameters, the one place
its defaults live. A config names an entry and overrides some parameters; an unknown name
or key is an error listing the valid ones, never a silently ignored setting.

The registry imports no framework: the modules that register entries (and import torch,
faiss, pywt) are loaded the first time an entry is looked up, so a config can be imported
without them (`import yt8mkit.pipeline.config` stays light).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from yt8mkit.errors import Yt8mError

Builder = TypeVar("Builder", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """What a registry knows of one name: how to build it, its parameters, and any
    a model's kind."""

    name: str
    builder: Callable[..., Any]
    params: type[BaseModel]
    # A model's kind ("video" or "frame"); empty where a registry has no kinds.
    kind: str = ""


class Registry(Generic[Builder]):
    """Named builders with typed parameters. ``what`` names the entries in messages
    ("model", "representation"); ``error`` is the exception raised for a bad name or
    parameter; ``modules`` are imported on the first look-up (they register the
    built-in entries)."""

    def __init__(self, what: str, error: type[Exception], modules: Sequence[str] = ()) -> None:
        self.what = what
        self.error = error
        self._modules = tuple(modules)
        self._loaded = False
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, params: type[BaseModel], kind: str = ""
                 ) -> Callable[[Builder], Builder]:
        """Class decorator: register ``cls`` under ``name`` with its parameter class."""

        def decorate(cls: Builder) -> Builder:
            known = self._entries.get(name)
            if known is not None and known.builder is not cls:
                raise self.error(f"{self.what} name {name!r} is already registered by "
                                 f"{known.builder}")
            self._entries[name] = Entry(name=name, builder=cls, params=params, kind=kind)
            return cls

        return decorate

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the modules register while being imported
            for module in self._modules:
                importlib.import_module(module)

    def entries(self) -> dict[str, Entry]:
        self._load()
        return dict(self._entries)

    def names(self) -> list[str]:
        return sorted(self.entries())

    def get(self, name: str) -> Entry:
        entry = self.entries().get(name)
        if entry is None:
            raise self.error(f"unknown {self.what} {name!r}; known {self.what}s: "
                             f"{self.names()}")
        return entry

    def resolve(self, name: str, params: dict[str, Any] | BaseModel | None = None) -> BaseModel:
        """``params`` validated against the entry's parameter class, defaults filled in."""
        entry = self.get(name)
        if isinstance(params, entry.params):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise self.error(f"{self.what} {name!r}: params must be a mapping, got "
                             f"{type(params).__name__}")
        valid = sorted(entry.params.model_fields)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise self.error(f"{self.what} {name!r}: unknown parameter(s) {unknown}; "
                             f"valid parameters: {valid}")
        try:
            return entry.params.model_validate(params)
        except ValidationError as error:
            raise self.error(f"{self.what} {name!r}: invalid parameters: {error}") from error

    def defaults(self, name: str) -> dict[str, Any]:
        """Every parameter of ``name`` with its default (``yt8m models NAME``)."""
        entry = self.get(name)
        return {key: (None if f.is_required() else f.get_default(call_default_factory=True))
                for key, f in entry.params.model_fields.items()}

    def build(self, name: str, *args: Any, params: dict[str, Any] | BaseModel | None = None
              ) -> Any:
        return self.get(name).builder(*args, self.resolve(name, params))


class RegistryError(Yt8mError, ValueError):
    """Base of the registries' errors (a config error: ValueError, so that pydantic
    reports it with the key path)."""
