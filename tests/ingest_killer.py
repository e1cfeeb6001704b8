"""An ingest that kills itself (SIGKILL) at a chosen point: run as a child process by
tests/test_ingest_resume.py.

    python -m tests.ingest_killer OUT WORKERS FLOAT32 AT FRACTION SOURCE...

AT names the point: ``none`` (no kill: run to the end), ``append:K`` (in the K-th
write to an array file, after FRACTION of its bytes), ``journal:K`` (in the K-th
journal line, after FRACTION of its bytes), ``finish`` (after meta.json is written,
before the store is moved into place). A kill at a random time is the caller's.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

from yt8mkit.data import journal, store
from yt8mkit.data.ingest import IngestConfig, ingest


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install(at: str, fraction: float) -> None:
    kind, _, count = at.partition(":")
    calls = {"n": 0}
    if kind == "append":
        original = store.StoreWriter._append

        def append(self: store.StoreWriter, name: str, data: np.ndarray | bytes) -> None:
            calls["n"] += 1
            if calls["n"] == int(count):
                raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
                original(self, name, raw[: int(len(raw) * fraction)])
                for f in self._files.values():
                    f.flush()  # type: ignore[attr-defined]
                _die()
            original(self, name, data)

        store.StoreWriter._append = append  # type: ignore[method-assign]
    elif kind == "journal":
        original_line = journal.append

        def line(fd: int, entry: dict) -> None:
            calls["n"] += 1
            if calls["n"] == int(count):
                import json

                text = (json.dumps(entry) + "\n").encode()
                os.write(fd, text[: int(len(text) * fraction)])
                _die()
            original_line(fd, entry)

        journal.append = line  # type: ignore[assignment]
    elif kind == "finish":
        original_move = store._move_into_place

        def move(tmp: Path, path: Path) -> None:
            if fraction < 0.5:
                _die()
            original_move(tmp, path)
            _die()

        store._move_into_place = move  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    out, workers, float32, at, fraction, *sources = argv
    if at != "none":
        _install(at, float(fraction))
    config = IngestConfig(
        workers=int(workers), video_dtype="float32" if float32 == "1" else "float16"
    )
    ingest(sources, out, config)


if __name__ == "__main__":
    main(sys.argv[1:])
