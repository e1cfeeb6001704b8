"""Model registry and architectures. The registry (``models/registry.py``) imports the
architectures the first time a model is looked up; build them with :func:`create_model`."""

from __future__ import annotations

from yt8mkit.lazy import lazy_getattr

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

# Lazy (yt8mkit/lazy.py): importing the package loads no framework.
__getattr__ = lazy_getattr(__name__, _EXPORTS)
