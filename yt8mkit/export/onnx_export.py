"""Export a video-level classifier to one ONNX file: one float32 input per feature (any
batch size), probabilities out (the sigmoid is inside the graph), optionally with int8
weights, checked against PyTorch and against a size budget (1 GB in the challenge).

Exporter: the TorchScript-based one (``dynamo=False``). The torch.export-based exporter,
torch's default, needs the ``onnxscript`` package; the TorchScript one works offline with
torch alone and writes byte-identical files for identical models.

Nothing appears at ``path`` unless the file passed every check: work happens in a
temporary directory beside it, removed whatever happens, and the result is renamed into
place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.errors import Yt8mError
from yt8mkit.export.metadata import add_metadata
from yt8mkit.outputs import scratch_dir

OPSET = 17
OUTPUT = "probabilities"
FP32_TOLERANCE = 1e-4
CHECK_BATCH = 64


class ExportReport(BaseModel):
    path: str
    size_bytes: int
    max_size_bytes: int
    quantized: bool
    opset: int
    inputs: dict[str, int]
    # ONNX Runtime against PyTorch on the check inputs.
    max_abs_diff: float
    top20_agreement: float
    # Size of the float32 graph before quantization (when quantized).
    fp32_size_bytes: int | None = None
    seconds: float


class ProbabilityGraph(nn.Module):
    """The classifier as the exported graph sees it: positional tensors in, probabilities
    out (the registry's models return logits)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(dict(zip(self.names, tensors))))


def top_k_agreement(a: np.ndarray, b: np.ndarray, k: int = 20) -> float:
    """Mean share of each row's top-k labels that two score matrices have in common."""
    k = min(k, a.shape[1])
    top_a = np.argpartition(-a, k - 1, axis=1)[:, :k]
    top_b = np.argpartition(-b, k - 1, axis=1)[:, :k]
    same = (top_a[:, :, None] == top_b[:, None, :]).any(axis=2).sum(axis=1)
    return float(same.mean() / k)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The legacy exporter announces its deprecation and onnxruntime's quantizer advises
    pre-processing on every call; neither is news to the caller."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def _check_inputs(
    feature_dims: dict[str, int], check_inputs: dict[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    if check_inputs is not None:
        missing = [n for n in feature_dims if n not in check_inputs]
        if missing:
            raise Yt8mError(f"check_inputs lack features {missing}")
        return {n: np.ascontiguousarray(check_inputs[n], np.float32) for n in feature_dims}
    rng = np.random.default_rng(0)
    return {n: rng.normal(size=(CHECK_BATCH, d)).astype(np.float32)
            for n, d in feature_dims.items()}


def _torch_probabilities(graph: ProbabilityGraph, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return graph(*(torch.from_numpy(inputs[n]) for n in graph.names)).numpy()


def _onnx_probabilities(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    from yt8mkit.export.predictor import OnnxPredictor

    return OnnxPredictor(path).predict(inputs)


def _expm1(g: Any, x: Any) -> Any:
    # ONNX has no expm1; exp(x) - 1 loses relative precision only for |x| << 1, where the
    # models use it (context gating's log(1 - p) near p = 1) to move probabilities by
    # less than 1e-7.
    one = g.op("Constant", value_t=torch.tensor(1.0, dtype=torch.float32))
    return g.op("Sub", g.op("Exp", x), one)


def _register_symbolics(opset: int) -> None:
    torch.onnx.register_custom_op_symbolic("aten::expm1", _expm1, opset)


def _export_fp32(graph: ProbabilityGraph, feature_dims: dict[str, int], path: Path,
                 opset: int) -> None:
    names = list(feature_dims)
    example = tuple(torch.zeros(2, d) for d in feature_dims.values())
    axes = {n: {0: "batch"} for n in [*names, OUTPUT]}
    _register_symbolics(opset)
    with _quiet():
        try:
            torch.onnx.export(
                graph, example, str(path), dynamo=False, opset_version=opset,
                input_names=names, output_names=[OUTPUT], dynamic_axes=axes,
                do_constant_folding=True,
            )
        except torch.onnx.errors.OnnxExporterError as error:
            name = type(graph.model).__name__
            raise Yt8mError(f"cannot export {name} to ONNX: {error}") from error


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)


def export_onnx(
    model: nn.Module,
    feature_dims: dict[str, int],
    path: str | os.PathLike[str],
    max_size_bytes: int = 1_000_000_000,
    quantize_int8: bool = False,
    check_inputs: dict[str, np.ndarray] | None = None,
    opset: int = OPSET,
    vocabulary: Vocabulary | None = None,
    verify: Callable[[Path], None] | None = None,
) -> ExportReport:
    """Write ``model`` (a video-level classifier over ``feature_dims``) to ``path``.

    Raises Yt8mError, leaving nothing at ``path``, when the file is over ``max_size_bytes``
    or, in float32, when ONNX Runtime and PyTorch disagree by more than 1e-4; int8 only
    reports its difference and top-20 agreement. ``verify(file)``, the caller's own check
    of the finished file, runs before it is moved to ``path``: a file at ``path`` has
    passed every check, whenever the process is killed.
    """
    began = time.perf_counter()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    graph = ProbabilityGraph(model, list(feature_dims)).eval()
    work = scratch_dir(out.parent, out.name)
    try:
        fp32 = work / "fp32.onnx"
        _export_fp32(graph, feature_dims, fp32, opset)
        # Class count, inputs and vocabulary travel with the model (export.metadata);
        # written again after quantization, which need not keep them.
        add_metadata(fp32, dict(feature_dims), vocabulary)
        final = fp32
        if quantize_int8:
            final = work / "int8.onnx"
            _quantize(fp32, final)
            add_metadata(final, dict(feature_dims), vocabulary)
        size = final.stat().st_size
        if size > max_size_bytes:
            raise Yt8mError(
                f"{out}: the exported model is {size:,} bytes, over the budget of "
                f"{max_size_bytes:,} bytes{' (after int8 quantization)' if quantize_int8 else ''}"
            )
        inputs = _check_inputs(feature_dims, check_inputs)
        expected = _torch_probabilities(graph, inputs)
        got = _onnx_probabilities(final, inputs)
        diff = float(np.abs(got - expected).max(initial=0.0))
        if not quantize_int8 and not diff <= FP32_TOLERANCE:
            raise Yt8mError(f"{out}: ONNX Runtime and PyTorch outputs differ by {diff:.3g}, "
                            f"more than {FP32_TOLERANCE:g}")
        report = ExportReport(
            path=str(out), size_bytes=size, max_size_bytes=max_size_bytes,
            quantized=quantize_int8, opset=opset, inputs=dict(feature_dims),
            max_abs_diff=diff, top20_agreement=top_k_agreement(got, expected),
            fp32_size_bytes=fp32.stat().st_size if quantize_int8 else None,
            seconds=time.perf_counter() - began,
        )
        if verify is not None:
            verify(final)
        os.replace(final, out)
        return report
    except OSError as err:  # a full disk, a file size limit: said plainly, nothing kept
        raise Yt8mError(f"{out}: the model could not be written ({err.strerror or err}); "
                        f"nothing was written (an earlier {out.name} is kept)") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        model.train(was_training)
