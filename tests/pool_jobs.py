"""Jobs for the worker-pool tests, in a module that imports next to nothing: a spawned
worker imports the module of its job."""

from __future__ import annotations

import os
import time
from pathlib import Path


def record_device(path: str, jobs: int) -> None:
    """Which process ran, and which GPUs it was given; then wait until all ``jobs`` have
    started, so that each runs in a worker of its own however slowly workers start."""
    Path(path).write_text(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES')}")
    deadline = time.monotonic() + 300
    while len(list(Path(path).parent.iterdir())) < jobs:
        if time.monotonic() > deadline:
            raise TimeoutError("the other jobs never started: not one worker each")
        time.sleep(0.05)
