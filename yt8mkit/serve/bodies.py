"""The request forms of `POST /predict`, decoded into one array per model input.

- ``application/json``: ``{"videos": [{"id": "v1", "features": {"rgb": [...],
  "audio": [...]}}, ...]}`` (``id`` optional).
- ``application/x-npy``: one NumPy ``.npy`` array (``numpy.save``) of shape (videos,
  width) or (width,), any float dtype and byte order; each row is the video's inputs side
  by side in the model's layout (``/metadata``'s ``layout``).
- ``application/octet-stream``: the same rows as raw float32 little-endian, with the
  header ``X-Shape: VIDEOS,WIDTH``.

Every fault is a :class:`RequestError` with its 4xx status and a message that names the
video and the feature.
"""

from __future__ import annotations

import io

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError

from yt8mkit.serve.model import RequestError, ServedModel

JSON = "application/json"
NPY = "application/x-npy"
RAW = "application/octet-stream"
FORMS = (JSON, NPY, RAW)


class VideoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, description="Echoed in the answer.")
    features: dict[str, list[StrictFloat]] = Field(
        description="One list of floats per model input, of the width /metadata gives.")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    videos: list[VideoIn] = Field(min_length=1)


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def decode_json(body: bytes, model: ServedModel, max_videos: int
                ) -> tuple[dict[str, np.ndarray], list[str | None]]:
    try:
        request = PredictRequest.model_validate_json(body)
    except ValidationError as error:
        # pydantic reports malformed JSON as a validation error of its own type.
        status = 400 if any(e["type"] == "json_invalid" for e in error.errors()) else 422
        raise RequestError(status, f"bad JSON request: {_validation_message(error)}") from None
    videos = request.videos
    if len(videos) > max_videos:
        raise RequestError(413, f"{len(videos)} videos in one request, at most {max_videos}")
    for i, video in enumerate(videos):
        who = f"video {i}" + (f" ({video.id!r})" if video.id is not None else "")
        unknown = sorted(set(video.features) - set(model.dims) - set(model.unread))
        missing = [n for n in model.dims if n not in video.features]
        if unknown or missing:
            raise RequestError(422, f"{who}: the model reads features {list(model.dims)}; "
                                    f"unknown {unknown}, missing {missing}")
        for name, width in model.dims.items():
            if len(video.features[name]) != width:
                raise RequestError(422, f"{who}: {name} has {len(video.features[name])} "
                                        f"values, the model reads {width}")
    with np.errstate(over="ignore"):  # beyond float32 becomes Inf, refused by check()
        inputs = {n: np.array([v.features[n] for v in videos], np.float32) for n in model.dims}
    return inputs, [v.id for v in videos]


def _rows(matrix: np.ndarray, model: ServedModel, max_videos: int) -> dict[str, np.ndarray]:
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] != model.width:
        raise RequestError(422, f"an array of shape {matrix.shape}: the model reads "
                                f"(videos, {model.width}) rows, its inputs side by side "
                                f"({', '.join(f'{n} {w}' for n, w in model.dims.items())})")
    if matrix.shape[0] == 0:
        raise RequestError(422, "no videos in the request")
    if matrix.shape[0] > max_videos:
        raise RequestError(413, f"{matrix.shape[0]} videos in one request, at most {max_videos}")
    return model.split(np.ascontiguousarray(matrix, np.float32))


def decode_npy(body: bytes, model: ServedModel, max_videos: int) -> dict[str, np.ndarray]:
    try:
        # allow_pickle=False: an object array cannot run code here; the body's size is
        # bounded before this, and .npy is never compressed, so neither is the array.
        matrix = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise RequestError(400, f"not a NumPy .npy array: {error}") from None
    if not isinstance(matrix, np.ndarray) or matrix.dtype.kind != "f":
        raise RequestError(422, f"a .npy array of dtype {getattr(matrix, 'dtype', '?')}: "
                                "floats are needed")
    return _rows(matrix, model, max_videos)


def decode_raw(body: bytes, shape_header: str | None, model: ServedModel, max_videos: int
               ) -> dict[str, np.ndarray]:
    if shape_header is None:
        raise RequestError(400, f"{RAW} needs the header X-Shape: VIDEOS,WIDTH "
                                f"(WIDTH {model.width} for this model)")
    try:
        videos, width = (int(part) for part in shape_header.split(","))
    except ValueError:
        raise RequestError(400, f"X-Shape {shape_header!r}: expected VIDEOS,WIDTH, "
                                "two integers") from None
    if videos < 0 or width < 0:
        raise RequestError(400, f"X-Shape {shape_header!r}: negative size")
    if len(body) != videos * width * 4:
        raise RequestError(400, f"X-Shape {videos},{width} needs {videos * width * 4:,} bytes "
                                f"of float32, the body has {len(body):,}")
    matrix = np.frombuffer(body, dtype="<f4").reshape(videos, width)
    return _rows(matrix, model, max_videos)
