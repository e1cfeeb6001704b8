"""The exported final model behind an HTTP API (FastAPI on uvicorn): features of one or
many videos in, top-k labels with names and scores out, requests batched server-side."""

from yt8mkit.serve.app import ServeSettings, create_app
from yt8mkit.serve.model import ServedModel

__all__ = ["ServeSettings", "ServedModel", "create_app"]
