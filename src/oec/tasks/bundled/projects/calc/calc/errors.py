"""The one exception calc raises, so callers can catch every user error in one place."""

from __future__ import annotations


class CalcError(Exception):
    """A bad expression; `pos` is the 0-based offset in the text, when known."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message if pos is None else f"{message} at position {pos}")
        self.pos = pos
