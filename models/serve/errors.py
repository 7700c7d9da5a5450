"""Errors of the model server (it does not import the suite's hierarchy: see the package doc).

    ServeError
    ├── ConfigInvalid   a flag or SERVE_* variable is wrong: names it, the value and the range
    ├── LoadError       the model cannot be found, downloaded or opened
    └── BadInput        a request the server refuses: HTTP status, a stable code and a message
"""

from __future__ import annotations


class ServeError(Exception):
    """Base of the model server's errors."""


class ConfigInvalid(ServeError):
    pass


class LoadError(ServeError):
    pass


class BadInput(ServeError):
    """Answered as ``{"error": code, "detail": message}`` with ``status`` (always 4xx)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
