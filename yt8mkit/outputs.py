"""The rule for every ``--out`` folder: the tool never deletes or overwrites what it
did not write.

An ``--out`` is refused when it exists and is not this tool's output of the same kind
(a non-empty folder of something else, a file), and when it is an input, holds an
input or lies inside an input folder: replacing it would destroy the inputs.

One-shot outputs (an exported model, a submission) are made in hidden scratch beside
them, named with the writer's pid and machine, and renamed into place when complete; a rerun removes
the scratch of writers that died (:func:`scratch_dir`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from yt8mkit.errors import Yt8mError


class OutputError(Yt8mError):
    """An output path that the tool refuses to write."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_out_dir(
    out: str | os.PathLike[str],
    kind: str,
    is_ours: Callable[[Path], bool],
    inputs: Sequence[str | os.PathLike[str]] = (),
    resolved_files: Sequence[str] = (),
) -> Path:
    """``out`` resolved, once it is safe to write a ``kind`` there (and to replace what
    is there: an empty folder, or ``is_ours``); else OutputError saying why.

    ``inputs`` as the user gave them (files, folders), ``resolved_files`` input files
    already resolved (thousands of shards: resolving them again would cost more than
    ingesting a small input)."""
    given = Path(out)
    path = given.resolve()
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {given}: is a file; give a folder for the {kind}")
    prefix = str(path).rstrip(os.sep) + os.sep
    for file in resolved_files:
        if file == str(path) or file.startswith(prefix):
            raise OutputError(
                f"--out {given}: holds the input {file}; writing the {kind} there would "
                f"destroy it"
            )
    for source in inputs:
        real = Path(source).resolve()
        if _inside(real, path):
            raise OutputError(
                f"--out {given}: holds the input {source}; writing the {kind} there would "
                f"destroy it"
            )
        if real.is_dir() and _inside(path, real):
            raise OutputError(
                f"--out {given}: lies inside the input folder {source}; give a folder "
                f"outside the inputs"
            )
    if path.is_dir() and any(path.iterdir()) and not is_ours(path):
        raise OutputError(
            f"--out {given}: exists and is not a {kind}; it is left as it is (remove it "
            f"yourself, or give another --out)"
        )
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# This machine's name as scratch names carry it: on a filesystem shared between machines,
# only a writer of this one can be known to be dead.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _tag() -> str:
    return f"{os.getpid()}-{_HOST}"


def _remove_stale(parent: Path, prefix: str) -> None:
    """Scratch of ``prefix`` left in ``parent`` by processes of this machine that died
    (killed, the power gone): its name holds the writer's pid and machine, and a live
    pid's scratch, or another machine's, is left alone."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-" + re.escape(_HOST) + r"\.")
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        found = pattern.match(entry.name)
        if found is None or _alive(int(found.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


# The permissions a plain open() would give (mkstemp and mkdtemp make them private).
_UMASK = os.umask(0)
os.umask(_UMASK)


def scratch_dir(parent: str | os.PathLike[str], name: str) -> Path:
    """A new hidden folder in ``parent`` for the making of ``name`` (renamed into place
    from there), after removing such folders of dead processes: a writer killed with
    SIGKILL cannot clean up after itself, its rerun does."""
    parent = Path(parent)
    _remove_stale(parent, f".{name}.")
    path = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.{_tag()}."))
    path.chmod(0o777 & ~_UMASK)
    return path


def scratch_file(parent: str | os.PathLike[str], name: str, suffix: str = ".partial"
                 ) -> tuple[int, str]:
    """:func:`scratch_dir` for one file: (open descriptor, path), as ``tempfile.mkstemp``."""
    parent = Path(parent)
    _remove_stale(parent, f".{name}.")
    fd, path = tempfile.mkstemp(dir=parent, prefix=f".{name}.{_tag()}.", suffix=suffix)
    os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """``path`` holds the old text or the whole new one, never a part."""
    path = Path(path)
    fd, tmp = scratch_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
