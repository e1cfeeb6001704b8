"""The progress journal of a store being written: one JSON line per complete input file.

The first line (the header) names the inputs and the options; each later line is
written after one input file's records are appended and flushed, and holds what a
resume needs to put the store back exactly where that file ended: the byte length of
every array file, the writer's counters, and the identity of the input file as it was
read (``tfrecord.FileIdentity``). Lines are only ever appended, in one ``write`` each,
so an interruption at any point leaves every earlier line intact; a torn last line
(a crash mid-write) is ignored, and then the file it would have recorded is simply
appended again.

Against a killed process this is enough: what was written before the kill is in the
page cache and reaches the disk. Against a power cut it is not (nothing is fsynced:
that would cost more than decoding a small shard).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

NAME = "progress.jsonl"


@dataclass
class JournalContents:
    header: dict
    entries: list[dict] = field(default_factory=list)


def start(path: Path, header: dict) -> None:
    """A new journal holding only ``header`` (written whole, then renamed into place)."""
    rewrite(path, JournalContents(header))


def rewrite(path: Path, contents: JournalContents) -> None:
    tmp = path.with_name(path.name + ".tmp")
    lines = [json.dumps(contents.header), *map(json.dumps, contents.entries)]
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def open_for_append(path: Path) -> int:
    """A descriptor that ``append`` writes lines through (kept open by the writer: an
    open per file costs more than the line)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)


def append(fd: int, entry: dict) -> None:
    line = (json.dumps(entry) + "\n").encode()
    written = os.write(fd, line)
    if written != len(line):  # a full disk: the line is torn, and a resume ignores it
        raise OSError(f"journal line written short ({written} of {len(line)} bytes)")


def read(path: Path) -> JournalContents | None:
    """The header and every whole entry line, or None without a readable header."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    lines = text.split("\n")
    # The last piece follows the last newline: empty, or a line torn by a crash.
    whole = lines[:-1]
    parsed: list[dict] = []
    for line in whole:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(item, dict):
            break
        parsed.append(item)
    if not parsed:
        return None
    return JournalContents(parsed[0], parsed[1:])
