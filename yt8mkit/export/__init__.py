"""The final model as one ONNX file: export (optionally int8), size check, inference."""

# Names re-exported lazily (PEP 562): importing the package loads no framework, so that a
# config module under it stays light; the first use of a name imports its module.
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExportReport": "yt8mkit.export.onnx_export",
    "OnnxPredictor": "yt8mkit.export.predictor",
    "export_onnx": "yt8mkit.export.onnx_export",
    "predict_store": "yt8mkit.export.predictor",
    "predict_to_submission": "yt8mkit.export.predictor",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
