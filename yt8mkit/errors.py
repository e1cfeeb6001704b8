"""Errors that name the input at fault, so a user can find and fix it."""

from __future__ import annotations


class Yt8mError(Exception):
    """Base class of every error yt8mkit raises on purpose."""


class BadInputError(Yt8mError):
    """An input file or one of its records is malformed.

    The message always names the file, the record index (when the fault is in
    one record) and what is wrong, so that the user can find the record.
    """

    def __init__(self, path: str, what: str, record: int | None = None) -> None:
        self.path = str(path)
        self.record = record
        self.what = what
        where = self.path if record is None else f"{self.path}, record {record}"
        super().__init__(f"{where}: {what}")
