"""The label vocabulary (the official ``vocabulary.csv`` or the generator's): index → name.

The official file's rows are sorted by ``TrainVideoCount``, not by index, and its
``WikiDescription`` fields hold commas and newlines inside quotes, so it is read with
the csv module and mapped through the ``Index`` column, never by row number.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from yt8mkit.errors import Yt8mError


@dataclass(frozen=True)
class Vocabulary:
    names: dict[int, str]
    # Vertical1 of each class that has one: the coarse groups of the paper's Fig. 5.
    verticals: dict[int, str]
    path: Path | None = None

    def name(self, index: int) -> str:
        """The class's name, or its index when the vocabulary does not name it."""
        return self.names.get(int(index), str(int(index)))

    def label(self, index: int) -> str:
        """``index name``: both, since names need not be unique across verticals."""
        name = self.names.get(int(index))
        return f"{int(index)}" if name is None else f"{int(index)} {name}"

    def vertical(self, index: int) -> str | None:
        return self.verticals.get(int(index))

    def __len__(self) -> int:
        return len(self.names)


def load_vocabulary(path: str | os.PathLike[str]) -> Vocabulary:
    """Read a vocabulary CSV with at least ``Index`` and ``Name`` columns."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as err:
        raise Yt8mError(f"{path}: cannot read the vocabulary ({err.strerror})") from None
    names: dict[int, str] = {}
    verticals: dict[int, str] = {}
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for needed in ("Index", "Name"):
            if needed not in columns:
                raise Yt8mError(f"{path}: no {needed!r} column (columns: {columns})")
        try:
            for row in reader:
                # DictReader's line_num is the physical line: quoted newlines count.
                where = f"{path}, line {reader.line_num}"
                try:
                    index = int(row["Index"])
                except (TypeError, ValueError):
                    raise Yt8mError(f"{where}: Index {row['Index']!r} is not an integer") from None
                if index < 0:
                    raise Yt8mError(f"{where}: negative Index {index}")
                if index in names:
                    raise Yt8mError(f"{where}: Index {index} appears twice")
                names[index] = (row["Name"] or "").strip()
                vertical = (row.get("Vertical1") or "").strip()
                if vertical:
                    verticals[index] = vertical
        except csv.Error as err:
            raise Yt8mError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None
    if not names:
        raise Yt8mError(f"{path}: the vocabulary has no rows")
    return Vocabulary(names=names, verticals=verticals, path=path)



def run_vocabulary(run_dir: Path) -> Path | None:
    """The vocabulary of a run directory: the one its config names (``data.vocabulary``),
    else the generator's of a synthetic run (whose verticals are its label groups)."""
    config = run_dir / "config.yaml"
    if config.is_file():
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
        if isinstance(data, dict) and data.get("vocabulary"):
            return Path(data["vocabulary"])
    path = run_dir / "synth" / "vocabulary.csv"
    return path if path.is_file() else None
