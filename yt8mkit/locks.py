"""Exclusive writer locks: one writer at a time for a store or a run directory.

A lock is ``fcntl.flock`` on a small file that holds the holder's pid. The kernel
drops a flock when its holder dies, however it dies (kill -9 included), so a lock file
left by a dead process is simply taken over; the pid in it is only there to name the
holder in the error a second writer gets.

Within one process a lock is re-entrant (a pipeline takes a run directory's lock, and
the stages it calls take it again). Worker processes that a holder starts (zoo and
distillation workers) inherit an environment variable naming the locks their
ancestors hold, and may then "take" those locks without blocking on them.
"""

from __future__ import annotations

import atexit
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from yt8mkit.errors import Yt8mError

_ENV = "YT8M_HELD_LOCKS"

# resolved lock file -> (its descriptor, how many times this process took it)
_held: dict[str, tuple[int, int]] = {}


class LockedError(Yt8mError):
    """Another process is writing the same store or run directory."""


def _ancestors() -> set[int]:
    """The pids of this process's ancestors (Linux: /proc; elsewhere the parent only)."""
    found = {os.getppid()}
    pid = os.getppid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        # The command name (field 2) may hold spaces and parentheses: split after it.
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found


def _held_by_ancestor(key: str) -> bool:
    ancestors = _ancestors()
    for entry in os.environ.get(_ENV, "").split(os.pathsep):
        pid, _, path = entry.partition(":")
        if path == key and pid.isdigit() and int(pid) in ancestors:
            return True
    return False


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


def acquire(lock_file: Path, what: str) -> None:
    """Take the lock ``lock_file`` (created if missing) for this process, or raise
    LockedError naming ``what`` and the holder's pid. Released by ``release`` or when
    the process ends."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    key = str(lock_file.resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        return
    fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        if _held_by_ancestor(key):
            return
        raise LockedError(
            f"{what} is in use by {holder} (lock file {key}); wait for it to finish, "
            f"or write elsewhere"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = (fd, 1)
    entries = [e for e in os.environ.get(_ENV, "").split(os.pathsep) if e]
    os.environ[_ENV] = os.pathsep.join([*entries, f"{os.getpid()}:{key}"])


def release(lock_file: Path) -> None:
    key = str(lock_file.resolve())
    if key not in _held:
        return
    fd, depth = _held[key]
    if depth > 1:
        _held[key] = (fd, depth - 1)
        return
    del _held[key]
    entry = f"{os.getpid()}:{key}"
    entries = [e for e in os.environ.get(_ENV, "").split(os.pathsep) if e and e != entry]
    os.environ[_ENV] = os.pathsep.join(entries)
    # The file stays: removing it would let a third process lock a new file of the same
    # name while a second still waits on the old one.
    os.close(fd)


@contextmanager
def exclusive(lock_file: Path, what: str) -> Iterator[None]:
    acquire(lock_file, what)
    try:
        yield
    finally:
        release(lock_file)


def store_lock_file(store: Path) -> Path:
    """A store's lock lies beside it: the store itself is renamed into place when
    complete, so a lock inside it would not hold while it is written."""
    store = Path(os.path.abspath(store))
    return store.with_name(f".{store.name}.lock")


@atexit.register
def release_all() -> None:
    """Release every lock this process holds (run directories are held until the
    process ends; a long-lived process that is done with them may call this)."""
    for key in list(_held):
        _held[key] = (_held[key][0], 1)
        release(Path(key))
