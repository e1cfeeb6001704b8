"""Model registry and architectures. Importing this package registers every model, so
callers only ever need :func:`create_model`."""

from yt8mkit.models import (  # noqa: F401  (registration)
    frame_attention,
    frame_bow,
    frame_features,
    frame_recurrent,
    frame_timedistributed,
    logistic,
    moe,
    resnet_like,
    student_mlp,
)
from yt8mkit.models.base import Classifier, init_output_bias
from yt8mkit.models.registry import (
    ModelConfig,
    ModelConfigError,
    create_model,
    get_model_entry,
    list_models,
    register_model,
    resolve_params,
)

__all__ = [
    "Classifier",
    "ModelConfig",
    "ModelConfigError",
    "create_model",
    "get_model_entry",
    "init_output_bias",
    "list_models",
    "register_model",
    "resolve_params",
]
