"""Distillation: the ensemble's out-of-fold scores as soft labels, students trained on
them, and the final model over the students' frozen features."""

from yt8mkit.distill.final_model import (
    FinalModel,
    FinalModelParams,
    StudentSpec,
    build_final_model,
    load_student,
)
from yt8mkit.distill.soft_labels import SoftLabels, build_soft_labels
from yt8mkit.distill.students import DEFAULT_STUDENTS, build_student, student_configs

__all__ = [
    "DEFAULT_STUDENTS",
    "FinalModel",
    "FinalModelParams",
    "SoftLabels",
    "StudentSpec",
    "build_final_model",
    "build_soft_labels",
    "build_student",
    "load_student",
    "student_configs",
]
