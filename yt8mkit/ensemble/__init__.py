"""Second level: LightGBM stacking of first-level predictions over candidate labels."""

from __future__ import annotations

from yt8mkit.lazy import lazy_getattr

_EXPORTS = {
    "FoldStack": "yt8mkit.ensemble.stack",
    "StackConfig": "yt8mkit.ensemble.config",
    "StackResult": "yt8mkit.ensemble.stack",
    "run_stack": "yt8mkit.ensemble.stack",
}
__all__ = sorted(_EXPORTS)

# Lazy (yt8mkit/lazy.py): importing the package loads no framework.
__getattr__ = lazy_getattr(__name__, _EXPORTS)
