"""Distillation: the ensemble's out-of-fold scores as soft labels, students trained on
them, and the final model over the students' frozen features."""

# Names re-exported lazily (PEP 562): importing the package loads no framework, so that a
# config module under it stays light; the first use of a name imports its module.
from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
