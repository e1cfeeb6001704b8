"""Following a run's log: timestamped lines as they come without a terminal, progress
lines with job counts and the running epoch on one."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from rich.console import Console

from yt8mkit.cli.live import follow_run
from yt8mkit.train.runlog import RunLog, log_event

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\S+Z ")


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=160, soft_wrap=True), buffer


def _events(log: RunLog) -> None:
    with log.active("pipeline demo"):
        log.write("stage zoo: 1 models x 2 folds")
        log.write("2 jobs to run, 0 already done")
        log_event("epoch tiny/fold0 0: train loss 0.1, valid BCE 0.1, GAP@20 0.4321, lr 0.01")
        log.write("done tiny fold 0")
        time.sleep(0.4)  # the follower polls: let it show the state in between
        log.write("done tiny fold 1")


def test_without_a_terminal_every_new_log_line_is_echoed_with_its_stamp(tmp_path: Path):
    log = RunLog(tmp_path)
    log.write("an earlier attempt")
    console, buffer = _console(terminal=False)
    with follow_run(tmp_path, console=console):
        _events(log)
    lines = buffer.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines)
    assert not any("an earlier attempt" in line for line in lines)
    assert [line.split(" ", 1)[1] for line in lines[1:-1]] == [
        "stage zoo: 1 models x 2 folds", "2 jobs to run, 0 already done",
        "epoch tiny/fold0 0: train loss 0.1, valid BCE 0.1, GAP@20 0.4321, lr 0.01",
        "done tiny fold 0", "done tiny fold 1"]


def test_on_a_terminal_a_progress_line_counts_jobs_and_shows_the_epoch(tmp_path: Path):
    log = RunLog(tmp_path)
    console, buffer = _console(terminal=True)
    with follow_run(tmp_path, console=console):
        _events(log)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "1/2" in text and "2/2" in text
    assert "tiny fold 0 epoch 0: GAP@20 0.4321" in text
    assert "done tiny fold 1" in text
    # Epoch lines update the progress line instead of scrolling past as messages.
    assert "valid BCE" not in text


def test_jobs_side_by_side_count_only_when_done(tmp_path: Path):
    """Two zoo jobs start at once: neither is done until its "done" line; a stage that
    says no "done" (distillation in-process) counts a job done when the next starts."""
    from yt8mkit.cli.live import _Display

    console, _ = _console(terminal=True)
    display = _Display(console, {"distill": 4})
    display.line("stage zoo: 1 models x 2 folds")
    display.line("2 jobs to run, 0 already done")
    display.line("epoch a/fold0 0: GAP@20 0.1")
    display.line("epoch a/fold1 0: GAP@20 0.1")
    assert display.progress.tasks[-1].completed == 0
    display.line("done a fold 1")
    assert display.progress.tasks[-1].completed == 1
    display.line("stage distill: 1 students on soft labels")
    assert display.progress.tasks[-1].total == 4
    display.line("epoch soft_student0/fold0 0: GAP@20 0.1")
    display.line("epoch soft_student0/fold0 1: GAP@20 0.2")
    display.line("epoch soft_student0/fold1 0: GAP@20 0.1")
    assert display.progress.tasks[-1].completed == 1
    assert display.progress.tasks[0].completed == 2  # the zoo's line ends full
