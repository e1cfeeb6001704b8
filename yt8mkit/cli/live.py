"""Live progress of a run, read from its ``run.log``.

Everything a run does is in its log, the epochs of jobs in worker processes included
(train.runlog), so the command follows the file rather than callbacks. On a terminal:
one rich progress line per stage, with jobs done / total, the running job's epoch and
validation GAP, elapsed time and ETA. Elsewhere (CI, ``nohup``, a pipe): the log's own
timestamped lines, one per event, as they are written.

The lines parsed here are the ones the stages write: ``stage NAME...``, ``N jobs to run,
M already done``, ``done MODEL fold K``, ``epoch MODEL/foldK E: ... GAP@20 G ...``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from yt8mkit.cli.progress import console as default_console
from yt8mkit.train.runlog import LOG_FILE

_STAMP = re.compile(r"^(\S+) (.*)$")
_STAGE = re.compile(r"^stage (\w+)")
_JOBS = re.compile(r"^(\d+) jobs to run, (\d+) already done")
_DONE = re.compile(r"^done (\S+) fold (\d+)")
_EPOCH = re.compile(r"^epoch (\S+)/fold(\d+) (\d+):.*GAP@20 ([0-9.]+)")
_POLL_SECONDS = 0.25


class _Display:
    """The rich progress lines, one task per stage."""

    def __init__(self, console: Console, stage_jobs: dict[str, int]) -> None:
        self.stage_jobs = stage_jobs
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"), console=console, transient=False,
        )
        self.task: TaskID | None = None
        self.done_lines = 0
        # Jobs trained in this process say no "done": a job whose epochs have started
        # means the one before it finished.
        self.jobs_seen: set[tuple[str, str]] = set()
        # A stage that announced its jobs ("N jobs to run") says "done" for each: only
        # those count there (jobs side by side would otherwise look finished too soon).
        self.counted = False

    def _finish_stage(self) -> None:
        if self.task is None:
            return
        task = self.progress.tasks[-1]
        done = task.total if task.total is not None else max(task.completed, 1)
        self.progress.update(self.task, total=done, completed=done)
        self.progress.stop_task(self.task)

    def _new_stage(self, name: str) -> None:
        self._finish_stage()
        self.done_lines, self.jobs_seen, self.counted = 0, set(), False
        self.task = self.progress.add_task(name, total=self.stage_jobs.get(name), status="")

    def _completed(self) -> int:
        if self.counted:
            return self.done_lines
        return max(self.done_lines, len(self.jobs_seen) - 1)

    def line(self, message: str) -> None:
        if (m := _STAGE.match(message)) and "skipped" not in message:
            self._new_stage(m.group(1))
        if self.task is None or message.startswith(("start ", "end ")):
            if message.startswith("end "):
                self._finish_stage()
            self.progress.console.print(message, markup=False, highlight=False)
            return
        if m := _JOBS.match(message):
            self.counted = True
            self.progress.update(self.task, total=int(m.group(1)), completed=0)
        elif m := _DONE.match(message):
            self.done_lines += 1
            self.progress.update(self.task, completed=self._completed())
        elif m := _EPOCH.match(message):
            model, fold, epoch, gap = m.groups()
            self.jobs_seen.add((model, fold))
            self.progress.update(self.task, completed=self._completed(),
                                 status=f"{model} fold {fold} epoch {epoch}: GAP@20 {gap}")
            return  # epochs update the line instead of scrolling past
        self.progress.console.print(message, markup=False, highlight=False)


@contextmanager
def follow_run(run_dir: Path, stage_jobs: dict[str, int] | None = None,
               console: Console | None = None) -> Iterator[None]:
    """Show the run's progress while the block runs: lines appended to ``run.log`` from
    now on (an earlier attempt's lines are not replayed)."""
    out = console or default_console
    path = run_dir / LOG_FILE
    start = path.stat().st_size if path.is_file() else 0
    stop = threading.Event()
    display = _Display(out, stage_jobs or {}) if out.is_terminal else None

    def handle(raw: str) -> None:
        if display is None:
            out.print(raw, markup=False, highlight=False, soft_wrap=True)
            return
        m = _STAMP.match(raw)
        display.line(m.group(2) if m else raw)

    def tail() -> None:
        offset, pending = start, b""
        while True:
            finished = stop.is_set()  # read once more after the block ends
            if path.is_file():
                with path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                offset += len(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    handle(line.decode("utf-8", "replace"))
            if finished:
                return
            stop.wait(_POLL_SECONDS)

    thread = threading.Thread(target=tail, name="run-log-follower", daemon=True)
    if display is not None:
        display.progress.start()
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if display is not None:
            display.progress.stop()
