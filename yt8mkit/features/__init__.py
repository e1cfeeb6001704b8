"""Frame-level representations: modules that turn padded frame batches into video-level
vectors (statistics, subsampling, global centroids, dynamics, learnable combinations).
The registry imports the representations the first time one is looked up; build them with
:func:`create_representation`."""

# Names re-exported lazily (PEP 562): importing the package loads no framework, so that a
# config module under it stays light; the first use of a name imports its module.
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Representation": "yt8mkit.features.base",
    "RepresentationConfig": "yt8mkit.features.registry",
    "RepresentationError": "yt8mkit.features.registry",
    "create_representation": "yt8mkit.features.registry",
    "list_representations": "yt8mkit.features.registry",
    "register_representation": "yt8mkit.features.registry",
    "resolve_representation_params": "yt8mkit.features.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
