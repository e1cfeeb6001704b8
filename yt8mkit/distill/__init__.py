"""Distillation: the ensemble's out-of-fold scores as soft labels, students trained on
them, and the final model over the students' frozen features."""

from __future__ import annotations

from yt8mkit.lazy import lazy_getattr

_EXPORTS = {
    "DEFAULT_STUDENTS": "yt8mkit.distill.students",
    "FinalModel": "yt8mkit.distill.final_model",
    "FinalModelParams": "yt8mkit.distill.final_model",
    "SoftLabels": "yt8mkit.distill.soft_labels",
    "StudentSpec": "yt8mkit.distill.final_model",
    "build_final_model": "yt8mkit.distill.final_model",
    "build_soft_labels": "yt8mkit.distill.soft_labels",
    "build_student": "yt8mkit.distill.students",
    "load_student": "yt8mkit.distill.final_model",
    "student_configs": "yt8mkit.distill.students",
}
__all__ = sorted(_EXPORTS)

# Lazy (yt8mkit/lazy.py): importing the package loads no framework.
__getattr__ = lazy_getattr(__name__, _EXPORTS)
