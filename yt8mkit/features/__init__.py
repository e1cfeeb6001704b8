"""Frame-level representations: modules that turn padded frame batches into video-level
vectors (statistics, subsampling, global centroids, dynamics, learnable combinations).
The registry imports the representations the first time one is looked up; build them with
:func:`create_representation`."""

from __future__ import annotations

from yt8mkit.lazy import lazy_getattr

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

# Lazy (yt8mkit/lazy.py): importing the package loads no framework.
__getattr__ = lazy_getattr(__name__, _EXPORTS)
