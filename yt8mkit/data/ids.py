"""What a video id may be: the key of every store row, of folds (hashed from the id)
and of the submission CSV, where a comma ends the field and a space separates label
pairs. So an id is non-empty UTF-8 without whitespace, commas or control characters;
anything else is refused at ingest, where the record is known, not found at the
submission step after every fold has trained (or, for two different non-UTF-8 ids,
never: they decoded to the same string).
"""

from __future__ import annotations

import numpy as np

# ASCII bytes an id must not hold: controls (whitespace among them), space, comma, DEL.
_BAD_BYTE = np.zeros(256, bool)
_BAD_BYTE[:0x21] = True
_BAD_BYTE[[ord(","), 0x7F]] = True


def id_fault(value: bytes) -> str | None:
    """Why ``value`` is not a valid video id, or None."""
    if not value:
        return "video id is empty"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"video id {value!r} is not UTF-8"
    if "," in text or any(c.isspace() or not c.isprintable() for c in text):
        return f"video id {text!r} holds whitespace, a comma or a control character"
    return None


def bad_ids(id_bytes: np.ndarray, id_offsets: np.ndarray) -> np.ndarray:
    """Whether each id (packed as in ``ShardChunk``) has an ``id_fault``: array checks
    for the usual all-ASCII case, ``id_fault`` itself for ids with other bytes."""
    lengths = np.diff(id_offsets)
    bad = lengths == 0
    if not id_bytes.size:
        return bad
    row_of_byte = np.repeat(np.arange(len(lengths)), lengths)
    bad[row_of_byte[_BAD_BYTE[id_bytes]]] = True
    wide = np.unique(row_of_byte[id_bytes >= 0x80])
    blob = id_bytes.tobytes()
    base = int(id_offsets[0])
    for row in wide.tolist():
        start, stop = int(id_offsets[row]) - base, int(id_offsets[row + 1]) - base
        bad[row] |= id_fault(blob[start:stop]) is not None
    return bad
