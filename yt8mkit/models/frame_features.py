"""Frame-level models that reduce frames to video-level vectors with a representation
from :mod:`yt8mkit.features`, then classify them with the ResNet-like network.

- ``features_resnet_like``: any registered representation (``features: {name, params}``);
- ``centroids_resnet_like``: global k-means centroids (paper, Table 1 row 14);
- ``linear_combinations_resnet_like``: n learnable position-tied combinations of frames
  (paper, Table 1 row 4, its best frame-level input; n = 5).

``inputs`` picks the frame features the representation reads; the ResNet-like part then
has one tower per representation output (the modalities, plus e.g. ``bag``).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, field_validator

from yt8mkit.features import RepresentationConfig, create_representation
from yt8mkit.features.centroids import CentroidStat
from yt8mkit.features.combinations import Init, Normalise, Position
from yt8mkit.features.registry import RepresentationError
from yt8mkit.models.inputs import select_modalities
from yt8mkit.models.registry import ModelConfigError, register_model
from yt8mkit.models.resnet_like import ResNetLike, ResNetLikeParams


class FeaturesResNetLikeParams(ResNetLikeParams):
    features: RepresentationConfig = Field(default_factory=RepresentationConfig)

    @field_validator("features", mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class CentroidsResNetLikeParams(ResNetLikeParams):
    centroids: str = Field(..., min_length=1, description="centroids .npy (yt8m centroids)")
    centroid_stats: list[CentroidStat] = Field(default_factory=lambda: list[CentroidStat](["mean"]))
    bag: bool = True


class LinearCombinationsResNetLikeParams(ResNetLikeParams):
    combinations: int = Field(5, ge=1)
    max_frames: int = Field(300, ge=1)
    normalise: Normalise = "softmax"
    position: Position = "absolute"
    knots: int = Field(32, ge=2)
    init: Init = "uniform"


def _head_params(params: ResNetLikeParams) -> ResNetLikeParams:
    """The ResNet-like part's own parameters: it reads every representation output."""
    fields = {name: getattr(params, name) for name in ResNetLikeParams.model_fields}
    return ResNetLikeParams(**{**fields, "inputs": None})


class _RepresentationResNetLike(ResNetLike):
    """A representation followed by a ResNet-like network over its outputs. Subclassing
    keeps the ResNet-like's layers (``towers``, ``trunk``, ``output``) where the video
    model has them, so whatever works on one (bias init, distillation's frozen features)
    works here."""

    def __init__(
        self,
        num_classes: int,
        feature_dims: dict[str, int],
        params: ResNetLikeParams,
        name: str,
        representation_params: dict[str, Any],
    ) -> None:
        frames = select_modalities(feature_dims, params.inputs)
        try:
            representation = create_representation(name, frames, representation_params)
        except (RepresentationError, FileNotFoundError, ValueError) as error:
            raise ModelConfigError(f"frame representation {name!r}: {error}") from error
        super().__init__(num_classes, representation.output_dims, _head_params(params))
        self.representation = representation
        self.frame_params = params

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().penultimate(self.representation(inputs))


@register_model("features_resnet_like", params=FeaturesResNetLikeParams, kind="frame")
class FeaturesResNetLike(_RepresentationResNetLike):
    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: FeaturesResNetLikeParams
    ) -> None:
        spec = params.features
        super().__init__(num_classes, feature_dims, params, spec.name, spec.params)


@register_model("centroids_resnet_like", params=CentroidsResNetLikeParams, kind="frame")
class CentroidsResNetLike(_RepresentationResNetLike):
    def __init__(
        self, num_classes: int, feature_dims: dict[str, int], params: CentroidsResNetLikeParams
    ) -> None:
        spec = {"path": params.centroids, "stats": params.centroid_stats, "bag": params.bag}
        super().__init__(num_classes, feature_dims, params, "centroids", spec)


@register_model(
    "linear_combinations_resnet_like", params=LinearCombinationsResNetLikeParams, kind="frame"
)
class LinearCombinationsResNetLike(_RepresentationResNetLike):
    def __init__(
        self,
        num_classes: int,
        feature_dims: dict[str, int],
        params: LinearCombinationsResNetLikeParams,
    ) -> None:
        spec = {
            "combinations": params.combinations,
            "max_frames": params.max_frames,
            "normalise": params.normalise,
            "position": params.position,
            "knots": params.knots,
            "init": params.init,
        }
        super().__init__(num_classes, feature_dims, params, "combinations", spec)
