"""The C walks of ingest (``native_examples.c``), or None where they were not built
(an install without a C compiler): callers then take their numpy or Python path."""

from __future__ import annotations

from types import ModuleType

native_examples: ModuleType | None
try:
    from yt8mkit.data import _native_examples as native_examples
except ImportError:
    native_examples = None
