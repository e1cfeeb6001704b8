"""Model registry and architectures. The registry (``models/registry.py``) imports the
architectures the first time a model is looked up; build them with :func:`create_model`."""

# Names re-exported lazily (PEP 562): importing the package loads no framework, so that a
# config module under it stays light; the first use of a name imports its module.
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Classifier": "yt8mkit.models.base",
    "ModelConfig": "yt8mkit.models.registry",
    "ModelConfigError": "yt8mkit.models.registry",
    "create_model": "yt8mkit.models.registry",
    "get_model_entry": "yt8mkit.models.registry",
    "init_output_bias": "yt8mkit.models.base",
    "list_models": "yt8mkit.models.registry",
    "register_model": "yt8mkit.models.registry",
    "resolve_params": "yt8mkit.models.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
