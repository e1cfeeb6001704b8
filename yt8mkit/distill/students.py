"""The students to distil into: a small zoo of ``student_mlp`` configurations of several
depths, widths and activations (the slides' "small ensemble (6 models)"), and building
them for a store. The architecture itself is registered in ``yt8mkit.models.student_mlp``.
"""

from __future__ import annotations

from yt8mkit.distill.config import DEFAULT_STUDENTS
from yt8mkit.models import Classifier, ModelConfig, create_model
from yt8mkit.models.student_mlp import StudentMlpParams


def student_configs(
    overrides: dict[str, object] | None = None,
) -> list[ModelConfig]:
    """The default students as model configs, each with ``overrides`` applied (e.g. a
    smaller width for a quick run)."""
    return [
        ModelConfig(name="student_mlp", params={**params, **(overrides or {})})
        for params in DEFAULT_STUDENTS
    ]


def build_student(
    num_classes: int, feature_dims: dict[str, int], params: StudentMlpParams | dict | None = None
) -> Classifier:
    model = create_model("student_mlp", num_classes, feature_dims, params)
    assert isinstance(model, Classifier)
    return model
