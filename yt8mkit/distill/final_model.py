"""The final model: the students' frozen penultimate features, concatenated (optionally with
the raw normalised input), feeding one new trainable classification layer (slides: "final
model trained on predictions of small ensemble in common graph").

It is a Classifier itself (penultimate = the concatenation, classify = the new layer), so
the ordinary trainer trains it; only the new layer learns. The students stay in eval mode
even while the final model trains: their dropout must not perturb the features and their
BatchNorm running statistics must not drift.

It is not in the model registry (it is built from trained students, not from a config
alone): :func:`build_final_model` builds it from student specs, for the trainer's
``model_factory``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from yt8mkit.models import Classifier, create_model
from yt8mkit.models.base import copy_into
from yt8mkit.models.inputs import gather_inputs, select_modalities
from yt8mkit.models.registry import ModelConfigError
from yt8mkit.train.checkpoints import load_checkpoint


class FinalModel(Classifier):
    output: nn.Linear

    def __init__(
        self,
        students: list[Classifier],
        num_classes: int,
        use_raw_input: bool = False,
        raw_dims: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        if not students:
            raise ModelConfigError("a final model needs at least one student")
        if use_raw_input and not raw_dims:
            raise ModelConfigError("use_raw_input needs raw_dims (feature name -> width)")
        self.num_classes = num_classes
        self.students = nn.ModuleList(students)
        for parameter in self.students.parameters():
            parameter.requires_grad_(False)
        self.students.eval()
        self.raw_dims = dict(raw_dims or {}) if use_raw_input else {}
        self.penultimate_dim = sum(s.penultimate_dim for s in students) + sum(
            self.raw_dims.values()
        )
        self.output = nn.Linear(self.penultimate_dim, num_classes)

    def train(self, mode: bool = True) -> FinalModel:
        super().train(mode)
        self.students.eval()
        return self

    def penultimate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        # Frozen weights and inputs that need no gradient: autograd records nothing here,
        # without a no_grad block that would get in the way of graph export.
        parts = [cast(Classifier, student).penultimate(inputs) for student in self.students]
        if self.raw_dims:
            parts += gather_inputs(inputs, list(self.raw_dims), "l2")
        return torch.cat(parts, dim=1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.output(features)

    def init_output_bias(self, prior_logits: torch.Tensor) -> None:
        copy_into(self.output.bias, prior_logits)


class StudentSpec(BaseModel):
    """One frozen student: a registered architecture, its parameters and trained weights
    (a trainer checkpoint such as ``fold0/best.pt``, or a bare state dict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "student_mlp"
    params: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None


class FinalModelParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    students: list[StudentSpec] = Field(min_length=1)
    use_raw_input: bool = False
    # Features concatenated raw when use_raw_input (default: all of the store's).
    raw_inputs: list[str] | None = None


def load_student(
    spec: StudentSpec, num_classes: int, feature_dims: dict[str, int]
) -> Classifier:
    model = create_model(spec.name, num_classes, feature_dims, spec.params)
    if not isinstance(model, Classifier):
        raise ModelConfigError(f"student {spec.name!r} is not a Classifier")
    if spec.checkpoint is not None:
        path = Path(spec.checkpoint)
        if not path.is_file():
            raise ModelConfigError(f"{path}: student checkpoint not found")
        state = load_checkpoint(path)
        model.load_state_dict(state.get("model", state))
    return model


def build_final_model(
    num_classes: int, feature_dims: dict[str, int], params: FinalModelParams
) -> FinalModel:
    """A FinalModel from student specs (trained students when they name checkpoints); pass
    ``lambda: build_final_model(...)`` as the trainer's model factory."""
    students = [load_student(s, num_classes, feature_dims) for s in params.students]
    raw = select_modalities(feature_dims, params.raw_inputs) if params.use_raw_input else None
    return FinalModel(students, num_classes, params.use_raw_input, raw)
