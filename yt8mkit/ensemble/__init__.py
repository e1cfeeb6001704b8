"""Second level: LightGBM stacking of first-level predictions over candidate labels."""

# Names re-exported lazily (PEP 562): importing the package loads no framework, so that a
# config module under it stays light; the first use of a name imports its module.
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FoldStack": "yt8mkit.ensemble.stack",
    "StackConfig": "yt8mkit.ensemble.config",
    "StackResult": "yt8mkit.ensemble.stack",
    "run_stack": "yt8mkit.ensemble.stack",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
