"""The C walks of ingest (``native_examples.c``), or None where they were not built
(an install without a C compiler): callers then take their numpy or Python path.

``crc32c_value`` is the address of that function in Google's crc32c library, the one
the google-crc32c wheel bundles (its Python binding calls it once a record, holding
the GIL; ``native_examples.crcs`` calls it for all the records of a file without).
None where the library is not found or does not give the binding's values.
"""

from __future__ import annotations

import ctypes
import importlib
from pathlib import Path
from types import ModuleType

import google_crc32c

native_examples: ModuleType | None
try:
    native_examples = importlib.import_module("yt8mkit.data._native_examples")
except ImportError:
    native_examples = None

_CHECK = bytes(range(256)) * 3


def _crc32c_library() -> tuple[ctypes.CDLL, int] | None:
    package = Path(google_crc32c.__file__).parent
    for path in sorted(package.parent.glob("google_crc32c.libs/libcrc32c*.so*")):
        try:
            library = ctypes.CDLL(str(path))
            function = library.crc32c_value
        except (OSError, AttributeError):
            continue
        function.restype = ctypes.c_uint32
        function.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        if function(_CHECK, len(_CHECK)) != google_crc32c.value(_CHECK):
            continue
        address = ctypes.cast(function, ctypes.c_void_p).value
        if address:
            return library, address
    return None


# The library object is kept so that the function stays loaded.
_found = _crc32c_library() if native_examples is not None else None
crc32c_value: int | None = None if _found is None else _found[1]
