"""The command's entry points: `python -m yt8mkit` and `--version`."""

from __future__ import annotations

import subprocess
import sys

import yt8mkit


def test_python_m_yt8mkit_prints_the_version_on_stdout() -> None:
    result = subprocess.run([sys.executable, "-m", "yt8mkit", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"yt8mkit {yt8mkit.__version__}"


def test_python_m_yt8mkit_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "yt8mkit", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("ingest", "pipeline", "distill", "report"):
        assert command in result.stdout
