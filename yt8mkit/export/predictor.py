"""Inference from an exported ONNX model with ONNX Runtime: arrays in, probabilities out,
a store streamed batch by batch, and a Kaggle submission written as it goes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from yt8mkit.data.predictions import top_k_of
from yt8mkit.data.store import Store
from yt8mkit.errors import Yt8mError
from yt8mkit.export.metadata import read_metadata

Progress = Callable[[int, int], None]  # (videos done, videos in all)
DEFAULT_BATCH = 1024


class OnnxPredictor:
    """One ONNX Runtime session on the CPU. ``threads`` None lets ONNX Runtime choose."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise Yt8mError(f"{self.path}: no such model file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ONNX Runtime threads otherwise spin for a while after each call, taking the
        # cores from whatever runs between batches (reading the store, PyTorch).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise Yt8mError(f"{self.path}: not a loadable ONNX model ({error})") from error
        # Features the graph reads; an exporter may drop an input the model never uses.
        self.input_names = [i.name for i in self.session.get_inputs()]
        # The width of each input where the graph fixes it (None: any width).
        self.input_dims = {i.name: i.shape[-1] if i.shape and isinstance(i.shape[-1], int)
                           else None for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name
        self.metadata = read_metadata(self.session)

    def check_store(self, store: Store) -> None:
        """Refuse data the model was not made for: another width of a feature it reads,
        or labels beyond its classes (another label set)."""
        missing = [n for n in self.input_names if n not in store.dims]
        if missing:
            raise Yt8mError(f"{self.path}: the model reads features {missing} that the "
                            f"store {store.path} lacks (it has {store.modalities})")
        for name in self.input_names:
            # The width the model's metadata records, else the one its graph fixes.
            want = self.metadata.inputs.get(name) or self.input_dims.get(name)
            if want is not None and store.dims[name] != want:
                raise Yt8mError(f"{self.path}: the model reads {name} of {want} dims, the "
                                f"store {store.path} has {store.dims[name]}")
        classes = self.metadata.num_classes
        if classes is not None and store.has_labels and store.num_classes > classes:
            raise Yt8mError(f"{self.path}: the model predicts {classes} classes, the store "
                            f"{store.path} has labels up to {store.num_classes - 1}")

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 (batch, classes) probabilities."""
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise Yt8mError(f"{self.path}: the model reads features {self.input_names}, "
                            f"the inputs lack {missing}")
        feed = {n: np.ascontiguousarray(inputs[n], np.float32) for n in self.input_names}
        return self.session.run([self.output_name], feed)[0]


def predict_store(
    model_path: str | os.PathLike[str],
    store: Store,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    top_k: int = 20,
    threads: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows, top-k label ids, their probabilities) batch by batch, in store order; only
    one batch of features is read at a time."""
    predictor = OnnxPredictor(model_path, threads)
    predictor.check_store(store)
    for start in range(0, store.num_videos, batch_size):
        stop = min(start + batch_size, store.num_videos)
        inputs = {n: np.asarray(store.video_features(n)[start:stop], np.float32)
                  for n in predictor.input_names}
        indices, scores = top_k_of(predictor.predict(inputs), top_k)
        yield np.arange(start, stop), indices, scores
        if progress is not None:
            progress(stop, store.num_videos)


def predict_to_submission(
    model_path: str | os.PathLike[str],
    store: Store,
    out_csv: str | os.PathLike[str],
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    threads: int | None = None,
) -> Path:
    """Kaggle submission (top 20 a video) of every video of ``store``, written as the
    batches come (the file appears only when complete)."""
    from yt8mkit.data.submission import SubmissionWriter

    if batch_size < 1:
        raise Yt8mError(f"batch size {batch_size}: must be at least 1")
    if Path(out_csv).is_dir():
        raise Yt8mError(f"--out {out_csv}: is a folder; give the CSV file to write")
    ids = store.ids()
    batches = predict_store(model_path, store, batch_size, progress, 20, threads)
    # Label ids come from the model's own outputs, so they are in its range by
    # construction; the store's class count is unknown when it is unlabelled.
    with SubmissionWriter(out_csv) as writer:
        for rows, indices, scores in batches:
            writer.write(ids[rows[0] : rows[-1] + 1], indices, scores)
    return Path(out_csv)
