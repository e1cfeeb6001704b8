"""The final model as one ONNX file: export (optionally int8), size check, inference."""

from __future__ import annotations

from yt8mkit.lazy import lazy_getattr

_EXPORTS = {
    "ExportReport": "yt8mkit.export.onnx_export",
    "OnnxPredictor": "yt8mkit.export.predictor",
    "export_onnx": "yt8mkit.export.onnx_export",
    "predict_store": "yt8mkit.export.predictor",
    "predict_to_submission": "yt8mkit.export.predictor",
}
__all__ = sorted(_EXPORTS)

# Lazy (yt8mkit/lazy.py): importing the package loads no framework.
__getattr__ = lazy_getattr(__name__, _EXPORTS)
