"""The report renders in a real browser: headless Chromium (Debian's package, installed
with apt when absent) opens it; every image must load and the console stay clean.

Playwright drives the system Chromium (``executable_path``): browser builds that
Playwright would download cannot be fetched here. Skipped only where no Chromium can be
installed (not root, no apt); under CI that is a failure instead.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.run_fixture import make_run
from yt8mkit.analysis.report import build_report

# The Debian launcher script is a wrapper; the binary beside it takes the same flags.
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def _find_chromium() -> str | None:
    for name in CANDIDATES:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"no headless browser in CI: {why}")
    pytest.skip(why)


def _apt_install() -> str:
    """Install chromium with apt; returns apt's complaint when it did not work."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # pytest-xdist may run this in two workers at once: one installs, the other waits.
    with open(tempfile.gettempdir() + "/yt8mkit-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _find_chromium() is not None:
            return ""
        install = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env,
                                 capture_output=True, text=True)
        if install.returncode != 0:  # a fresh machine's package lists may be empty
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            install = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env,
                                     capture_output=True, text=True)
        return install.stderr[-2000:]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            _unavailable("chromium is not installed and apt-get cannot install it here")
        complaint = _apt_install()
        path = _find_chromium()
        if path is None:
            _unavailable(f"apt-get install chromium failed: {complaint}")
    assert path is not None
    return path


def _open(chromium: str, page_path: Path) -> tuple[list[int], list[str]]:
    """(natural width of every image, console errors and page errors) of a page."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            widths = page.evaluate(
                "Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        finally:
            browser.close()
    return widths, errors


def test_report_images_load_and_console_is_clean(chromium: str, tmp_path: Path):
    run = make_run(tmp_path / "run")
    report = build_report(run, tmp_path / "report")
    widths, errors = _open(chromium, report.html)
    assert len(widths) == len(report.figures) == 7
    assert all(w > 0 for w in widths), widths
    assert errors == []


def test_the_check_sees_a_broken_image_and_a_console_error(chromium: str, tmp_path: Path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA">'
                    "<script>console.error('boom')</script></body></html>")
    widths, errors = _open(chromium, page)
    assert widths == [0]
    assert any("boom" in e for e in errors)
