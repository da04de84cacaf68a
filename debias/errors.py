"""The one family of user-facing errors.

Every error a user can fix (a malformed manifest, a bad predictions file, an option out of range, a
folder that would be overwritten) is a :class:`DebiasError`. The CLI prints its message, without a
traceback, and exits with code 2; a notebook user catches ``debias.DebiasError``. Anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations


class DebiasError(ValueError):
    """A problem with the user's input; the message names the file, row or value and what to do."""


__all__ = ["DebiasError"]
