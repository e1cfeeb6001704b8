"""Shared fixtures: where the real data lies, and the rule for tests that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO_2018 = SHARED_DATA / "yt8m-2018-video"
SMOKE = VIDEO_2018 / "smoke"
FRAME_FORMAT = SHARED_DATA / "yt8m-frame-format"


def require_shared(path: Path) -> Path:
    """Skip with a reason in a user's clone without ../shared; in CI the data is there
    and a missing path is a failure, never a silent skip."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"real data not present at {path} (a clone without ../shared)")
    return path


@pytest.fixture
def smoke_dir() -> Path:
    return require_shared(SMOKE)


@pytest.fixture
def frame_format_dir() -> Path:
    return require_shared(FRAME_FORMAT)
