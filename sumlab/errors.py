"""The one exception type that sumlab raises for problems a user can fix."""

from __future__ import annotations


class SumlabError(Exception):
    """A problem with the user's input, config or environment, with a hint on how to fix it.

    The CLI prints it as one line, ``error: <message> (<hint>)``, and exits with code 2.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
