"""The HTTP API (FastAPI): `POST /predict`, `GET /metadata`, `GET /health`, and the
OpenAPI page at `/docs`. Every refused request is a 4xx with a message in ``detail``."""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations at
# run time, and the query's bound (the model's class count) lives in a closure.
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from yt8mkit import __version__
from yt8mkit.serve.batcher import MicroBatcher
from yt8mkit.serve.bodies import (
    FORMS,
    JSON,
    NPY,
    RAW,
    PredictRequest,
    decode_json,
    decode_npy,
    decode_raw,
)
from yt8mkit.serve.model import RequestError, ServedModel


class ServeSettings(BaseModel):
    max_videos: int = Field(1024, ge=1, description="Videos one request may hold.")
    max_batch: int = Field(256, ge=1, description="Videos one ONNX Runtime call may hold.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits for requests "
                                                      "on their way.")
    top_k: int = Field(20, ge=1, description="Labels a video, unless the request says.")
    # A float in JSON takes up to about 25 bytes; None: derived from max_videos.
    max_body_bytes: int | None = Field(None, ge=1)


class LabelOut(BaseModel):
    index: int
    name: str | None = Field(description="From the vocabulary, when there is one.")
    score: float = Field(description="The model's probability.")


class VideoOut(BaseModel):
    id: str | None = Field(description="The request's id (JSON), else the row's index.")
    labels: list[LabelOut]


class PredictResponse(BaseModel):
    videos: list[VideoOut]


_BINARY_SCHEMA = {"type": "string", "format": "binary"}
_PREDICT_DOC = f"""Top-k labels of one or many videos.

Bodies: `{JSON}` (the schema below), `{NPY}` (a NumPy .npy array of shape (videos, width):
each row the video's inputs side by side in `/metadata`'s `layout`), or `{RAW}` (the same
rows as float32 little-endian, with the header `X-Shape: VIDEOS,WIDTH`). Concurrent
requests are answered from shared ONNX Runtime calls."""


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"a body of {int(declared):,} bytes, at most {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body without a length, or a false one
            raise RequestError(413, f"a body over {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model: ServedModel, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    max_body = settings.max_body_bytes or max(1 << 20, settings.max_videos * model.width * 32)
    state: dict[str, MicroBatcher] = {}
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher = MicroBatcher(model.probabilities, settings.max_batch,
                               settings.max_wait_ms / 1000)
        batcher.start()
        state["batcher"] = batcher
        yield
        await batcher.stop()

    app = FastAPI(title="yt8mkit model server", version=__version__, lifespan=lifespan,
                  description=f"Serves `{model.path.name}`: {model.num_classes} classes, "
                              f"inputs {model.dims}.")

    @app.exception_handler(RequestError)
    async def _refused(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.get("/health")
    async def health() -> dict:
        """Up and ready; with the batching counters since start."""
        batcher = state.get("batcher")
        stats = batcher.stats if batcher else None
        return {"status": "ok", "model": model.path.name,
                "uptime_s": round(time.time() - started, 3),
                "requests": stats.requests if stats else 0,
                "videos": stats.videos if stats else 0,
                "onnx_calls": stats.calls if stats else 0,
                "largest_batch": stats.largest if stats else 0}

    @app.get("/metadata")
    async def metadata() -> dict:
        """What the model's ONNX metadata says: classes, inputs, the binary layout, names."""
        vocabulary = model.vocabulary
        return {"model": model.path.name, "num_classes": model.num_classes,
                "inputs": model.dims, "layout": list(model.dims), "width": model.width,
                "vocabulary": ({str(k): v for k, v in sorted(vocabulary.names.items())}
                               if vocabulary else None),
                "max_videos": settings.max_videos, "max_body_bytes": max_body,
                "top_k": settings.top_k, "forms": list(FORMS)}

    @app.post(
        "/predict", response_model=PredictResponse, description=_PREDICT_DOC,
        openapi_extra={"requestBody": {"required": True, "content": {
            JSON: {"schema": PredictRequest.model_json_schema()},
            NPY: {"schema": _BINARY_SCHEMA}, RAW: {"schema": _BINARY_SCHEMA}}}},
        responses={400: {"description": "Malformed body"},
                   413: {"description": "Too many videos or bytes"},
                   415: {"description": "Unknown content type"},
                   422: {"description": "Wrong features: widths, names, NaN or Inf"}},
    )
    async def predict(
        request: Request,
        top_k: Annotated[int | None, Query(ge=1, le=model.num_classes,
                                           description="Labels a video.")] = None,
    ) -> Response:
        batcher = state["batcher"]
        ids: list[str | None] | None = None
        with batcher.expect():
            kind = _content_type(request)
            if kind not in FORMS:
                raise RequestError(415, f"content type {kind or 'none'!r}: send one of "
                                        f"{', '.join(FORMS)}")
            try:
                body = await _read_body(request, max_body)
            except ClientDisconnect:
                return JSONResponse({"detail": "client disconnected"}, status_code=400)
            if kind == JSON:
                inputs, ids = decode_json(body, model, settings.max_videos)
            elif kind == NPY:
                inputs = decode_npy(body, model, settings.max_videos)
            else:
                inputs = decode_raw(body, request.headers.get("x-shape"), model,
                                    settings.max_videos)
            videos = model.check(inputs, ids)
        probabilities = await batcher.submit(inputs, videos)
        top = model.top_k(probabilities, top_k or settings.top_k)
        # Lists and orjson: the answer's floats cost more to write with the json module
        # (2 ms for 64 videos × 20 labels) than ONNX Runtime takes to compute them.
        names = model.names_of(top.indices).tolist()
        indices, scores = top.indices.tolist(), top.scores.tolist()
        out = [{"id": ids[row] if ids and ids[row] is not None else str(row),
                "labels": [{"index": i, "name": n, "score": s}
                           for i, n, s in zip(indices[row], names[row], scores[row])]}
               for row in range(videos)]
        return Response(orjson.dumps({"videos": out}), media_type=JSON)

    return app
