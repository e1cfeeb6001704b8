"""uint8 quantization of YouTube-8M features over [-2, 2], as the official starter defines it."""

from __future__ import annotations

import numpy as np

MIN_QUANTIZED = -2.0
MAX_QUANTIZED = 2.0
# The starter's Dequantize: scalar = range / 255, bias = range / 512 + min. Kept in float32
# because the starter computes in float32 tensors, so our features match its bit for bit.
_RANGE = MAX_QUANTIZED - MIN_QUANTIZED
SCALAR = np.float32(_RANGE / 255.0)
BIAS = np.float32(_RANGE / 512.0 + MIN_QUANTIZED)


def dequantize(quantized: np.ndarray) -> np.ndarray:
    """uint8 codes to float32 features: ``q * 4/255 + (4/512 - 2)``."""
    return quantized.astype(np.float32) * SCALAR + BIAS


def quantize(features: np.ndarray) -> np.ndarray:
    """float features to the uint8 code whose dequantized value is nearest (clipped to range)."""
    codes = np.rint((np.asarray(features, dtype=np.float32) - BIAS) / SCALAR)
    return np.clip(codes, 0, 255).astype(np.uint8)
