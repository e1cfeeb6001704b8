"""Frame-level representations: modules that turn padded frame batches into video-level
vectors (statistics, subsampling, global centroids, dynamics, learnable combinations).
Importing this package registers every representation; build them with
:func:`create_representation`."""

from yt8mkit.features import (  # noqa: F401  (registration)
    centroids,
    combinations,
    dynamics,
    statistics,
    subsampling,
)
from yt8mkit.features.registry import (
    Representation,
    RepresentationConfig,
    RepresentationError,
    create_representation,
    list_representations,
    register_representation,
    resolve_representation_params,
)

__all__ = [
    "Representation",
    "RepresentationConfig",
    "RepresentationError",
    "create_representation",
    "list_representations",
    "register_representation",
    "resolve_representation_params",
]
