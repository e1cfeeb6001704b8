"""Jobs for the worker-pool tests, in a module that imports next to nothing: a spawned
worker imports the module of its job."""

from __future__ import annotations

import os
import time
from pathlib import Path


def record_device(path: str) -> None:
    """Which process ran, and which GPUs it was given."""
    time.sleep(1.0)  # both workers busy at once: each takes one job
    Path(path).write_text(f"{os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES')}")
