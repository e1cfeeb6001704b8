"""`yt8m serve`: an exported model behind an HTTP API (FastAPI on uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from yt8mkit.cli import names
from yt8mkit.cli.app import app
from yt8mkit.cli.names import VocabularyOption
from yt8mkit.cli.progress import console
from yt8mkit.errors import Yt8mError


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(help="Exported model (ONNX).")],
    vocabulary: VocabularyOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")
                    ] = 8000,
    max_videos: Annotated[int, typer.Option(min=1, help="Videos one request may hold.")
                          ] = 1024,
    max_batch: Annotated[int, typer.Option(
        min=1, help="Videos one ONNX Runtime call may gather from concurrent requests "
                    "(a larger request runs alone).")] = 256,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, help="How long a batch may wait for requests being read.")] = 5.0,
    top_k: Annotated[int, typer.Option(min=1, help="Labels a video unless asked.")] = 20,
    threads: Annotated[int | None, typer.Option(
        min=1, help="ONNX Runtime threads (default: its own choice).")] = None,
) -> None:
    """Answer the top-k labels (names, scores) of videos' features over HTTP: POST
    /predict (JSON, .npy or raw float32), GET /metadata, GET /health, the OpenAPI page at
    /docs. Stops on Ctrl-C."""
    import socket

    import uvicorn

    from yt8mkit.serve import ServedModel, ServeSettings, create_app

    served = ServedModel(model, names.load(vocabulary), threads)
    settings = ServeSettings(max_videos=max_videos, max_batch=max_batch,
                             max_wait_ms=max_wait_ms, top_k=min(top_k, served.num_classes))
    # Bound here, not by uvicorn, so that a port in use is a one-line error, and the
    # port actually taken (with --port 0) can be printed.
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it each keep-alive answer waited 40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise Yt8mError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    bound = sock.getsockname()[1]
    console.print(f"serving {model} ({served.num_classes} classes, inputs {served.dims}) "
                  f"on http://{host}:{bound} (docs: /docs)", markup=False, soft_wrap=True)
    config = uvicorn.Config(create_app(served, settings), log_level="warning",
                            access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
