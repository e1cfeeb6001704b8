"""``run.log``: one timestamped line per event of a run (stages, jobs, epochs, retries,
errors), appended across resumes, so that a run can be followed with ``tail -f`` and
read back after the fact.

Training jobs run in worker processes; they find the log through the environment
(:data:`ENV`), which a process started with ``multiprocessing`` inherits, and append
whole lines with ``O_APPEND``: the kernel keeps such small writes from interleaving, so
workers need no lock. Jobs on a Ray cluster's other nodes do not see the file; their
epochs are still in each fold's curves.csv.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from yt8mkit.rundir import lock_run_dir

ENV = "YT8M_RUN_LOG"
LOG_FILE = "run.log"


def _line(message: str) -> bytes:
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    # One event, one line: a message with newlines (a traceback) is folded.
    return f"{stamp} {' | '.join(message.splitlines()) or '-'}\n".encode()


def append(path: str | os.PathLike[str], message: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, _line(message))
    finally:
        os.close(fd)


def log_event(message: str) -> None:
    """Append to the active run's log, if a run is active in this process or its parent."""
    path = os.environ.get(ENV)
    if path:
        # A log that cannot be written must not stop training.
        with suppress(OSError):
            append(path, message)


class RunLog:
    """The log of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        # The log is written by the run directory's writer only: claim it (create it, check
        # it is new or a run of this tool, take its lock) before anything is written.
        lock_run_dir(run_dir)
        self.path = run_dir / LOG_FILE

    def write(self, message: str) -> None:
        append(self.path, message)

    def tee(self, report: Callable[[str], None] | None) -> Callable[[str], None]:
        """A report callback that logs every message, then passes it on."""
        def both(message: str) -> None:
            self.write(message)
            if report is not None:
                report(message)
        return both

    @contextmanager
    def active(self, what: str) -> Iterator[RunLog]:
        """Log the start and end (or the error) of ``what``; meanwhile this process and
        the workers it starts log their events here."""
        previous = os.environ.get(ENV)
        os.environ[ENV] = str(self.path.resolve())
        self.write(f"start {what} (pid {os.getpid()})")
        try:
            yield self
        except BaseException as err:
            self.write(f"error in {what}: {type(err).__name__}: {err}")
            raise
        else:
            self.write(f"end {what}")
        finally:
            if previous is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = previous
