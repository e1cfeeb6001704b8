"""A submission with the labels' names beside their indices (`yt8m predict --names`).

The Kaggle columns stay as they are, and a third, ``LabelNames``, lists the names of the
line's labels in the same order, joined by " | ". Names hold commas (the official
vocabulary's do), so the file is written with the csv module, which quotes them; the
official scorer reads only the first two columns of a line, so this file is for people,
and the plain Kaggle file remains the default.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from yt8mkit.data.submission import HEADER
from yt8mkit.data.vocabulary import Vocabulary
from yt8mkit.outputs import scratch_file

NAMES_COLUMN = "LabelNames"
SEPARATOR = " | "


def add_names_column(path: str | os.PathLike[str], vocabulary: Vocabulary) -> Path:
    """Rewrite the submission at ``path`` with the names column, line by line, atomically."""
    path = Path(path)
    fd, tmp = scratch_file(path.parent, path.name)
    try:
        with path.open(encoding="utf-8") as source, \
                os.fdopen(fd, "w", encoding="utf-8", newline="") as target:
            writer = csv.writer(target, lineterminator="\n")
            header = source.readline().rstrip("\n")
            if header != HEADER:
                raise ValueError(f"{path}: not a submission (header {header!r})")
            writer.writerow([*HEADER.split(","), NAMES_COLUMN])
            for line in source:
                video_id, pairs = line.rstrip("\n").split(",", 1)
                labels = pairs.split()[::2]
                writer.writerow([video_id, pairs,
                                 SEPARATOR.join(vocabulary.name(int(c)) for c in labels)])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
