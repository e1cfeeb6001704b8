"""Names from configs that become file or folder names (a model's run directory under
a zoo, ``runs/NAME``): plain names only, so that no config can write outside the run
directory it belongs to."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

_FORBIDDEN = ("/", "\\", "\0")


def check_plain_name(name: str) -> str:
    """``name`` when it is one path component, else ValueError saying why."""
    if not name or not name.strip():
        raise ValueError("a name must not be empty")
    if any(c in name for c in _FORBIDDEN):
        raise ValueError(f"{name!r}: a name must not hold a path separator")
    if name in (".", "..") or name.startswith("."):
        raise ValueError(f"{name!r}: a name must not start with a dot")
    if name != name.strip():
        raise ValueError(f"{name!r}: a name must not start or end with a space")
    return name


PlainName = Annotated[str, AfterValidator(check_plain_name)]
