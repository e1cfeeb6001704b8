"""The final model as one ONNX file: export (optionally int8), size check, inference."""

from yt8mkit.export.onnx_export import ExportReport, export_onnx
from yt8mkit.export.predictor import OnnxPredictor, predict_store, predict_to_submission

__all__ = ["ExportReport", "OnnxPredictor", "export_onnx", "predict_store",
           "predict_to_submission"]
