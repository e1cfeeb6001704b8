"""Reading a YAML config file: a missing file, a folder, bad YAML or a document that is
not a mapping is a clear error naming the file, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from yt8mkit.errors import BadInputError


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of an input file, or BadInputError saying why it cannot be read."""
    file = Path(path)
    if file.is_dir():
        raise BadInputError(str(path), "is a folder, not a file")
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(str(path), f"cannot be read ({err})") from None


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a YAML config file holds (empty for an empty file)."""
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as err:
        raise BadInputError(str(path), f"not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        found = type(data).__name__
        raise BadInputError(str(path), f"a config must be a YAML mapping, not a {found}")
    return data
