"""The served model: an ONNX Runtime session, what its metadata says it reads, and the
checks a request's features must pass before they reach it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yt8mkit.data.predictions import top_k_of
from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.errors import Yt8mError
from yt8mkit.export.predictor import OnnxPredictor


class RequestError(Yt8mError):
    """A request the server refuses: ``status`` is the HTTP status (4xx) to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Labels:
    """Top-k of a batch: (videos, k) class indices and probabilities."""

    indices: np.ndarray
    scores: np.ndarray


class ServedModel:
    """An exported model ready to answer: its inputs in the graph's order with their widths
    (the layout of the binary request forms), its class count and label names."""

    def __init__(self, path: str | os.PathLike[str], vocabulary: Vocabulary | None = None,
                 threads: int | None = None) -> None:
        self.predictor = OnnxPredictor(path, threads)
        self.path = Path(path)
        meta = self.predictor.metadata
        if meta.num_classes is None:
            raise Yt8mError(f"{path}: the model's output has no fixed class count")
        self.num_classes: int = meta.num_classes
        # The graph's inputs in its own order: the binary forms put them side by side so.
        dims: dict[str, int] = {}
        for name in self.predictor.input_names:
            width = meta.inputs.get(name) or self.predictor.input_dims.get(name)
            if width is None:
                raise Yt8mError(f"{path}: the width of input {name!r} is neither in the "
                                "model's metadata nor fixed by its graph")
            dims[name] = int(width)
        self.dims = dims
        self.width = sum(dims.values())
        # Inputs the model was exported over that its graph does not read (an exporter
        # drops an unused input): accepted in JSON and ignored, not refused as unknown.
        self.unread = sorted(set(meta.inputs) - set(dims))
        if vocabulary is not None and vocabulary.names and \
                max(vocabulary.names) >= self.num_classes:
            raise Yt8mError(f"{vocabulary.path}: the vocabulary names class "
                            f"{max(vocabulary.names)}, the model has {self.num_classes} classes")
        self.vocabulary = vocabulary if vocabulary is not None else meta.vocabulary()
        names = self.vocabulary.names if self.vocabulary is not None else {}
        self._names = np.array([names.get(i) for i in range(self.num_classes)], dtype=object)

    def split(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """(videos, width) rows of the binary forms → one array per input, in layout order."""
        out, start = {}, 0
        for name, width in self.dims.items():
            out[name] = matrix[:, start : start + width]
            start += width
        return out

    def check(self, inputs: dict[str, np.ndarray], ids: list[str | None] | None = None
              ) -> int:
        """Refuse features the model cannot take (a missing or unknown input, another
        width, NaN or Inf) with a message naming the video; returns the video count."""
        unknown = sorted(set(inputs) - set(self.dims))
        if unknown:
            raise RequestError(422, f"unknown features {unknown}: the model reads "
                                    f"{list(self.dims)}")
        missing = [n for n in self.dims if n not in inputs]
        if missing:
            raise RequestError(422, f"features {missing} are missing: the model reads "
                                    f"{list(self.dims)}")
        counts = {n: len(a) for n, a in inputs.items()}
        if len(set(counts.values())) != 1:
            raise RequestError(422, f"features of different video counts: {counts}")
        for name, width in self.dims.items():
            array = inputs[name]
            if array.ndim != 2 or array.shape[1] != width:
                got = array.shape[1] if array.ndim == 2 else f"shape {array.shape}"
                raise RequestError(422, f"{name}: {got} values a video, the model "
                                        f"reads {width}")
            # A JSON number beyond float32's range has become Inf in the cast.
            finite = np.isfinite(array).all(axis=1)
            if not finite.all():
                row = int(np.argmin(finite))
                who = f"video {row}" + (f" ({ids[row]!r})" if ids and ids[row] is not None else "")
                raise RequestError(422, f"{who}: {name} holds NaN, Inf or a value "
                                        "beyond float32's range")
        return next(iter(counts.values()))

    def probabilities(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.predictor.predict(inputs)

    def top_k(self, probabilities: np.ndarray, k: int) -> Labels:
        indices, scores = top_k_of(probabilities, k)
        return Labels(indices, scores)

    def names_of(self, indices: np.ndarray) -> np.ndarray:
        """The names of class indices (None where the vocabulary has none), same shape."""
        return self._names[indices]
