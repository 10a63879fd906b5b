"""The policy package's one exception."""

from __future__ import annotations


class PolicyError(Exception):
    """The policy file is unusable. The message names the file, the line (when known) and the key."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, key: str = ""):
        super().__init__(message)
        self.path = path
        self.line = line
        self.key = key
