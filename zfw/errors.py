"""Exceptions that zfw reports to people as one line, never as a traceback."""

from __future__ import annotations


class ZfwError(Exception):
    """Base of every error that is a user's or the environment's mistake."""


class PolicyError(ZfwError):
    """A mistake in a policy file, reported as ``file:line: message``."""

    def __init__(self, message: str, filename: str | None = None, lineno: int | None = None):
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.lineno = lineno

    def located(self, filename: str, lineno: int | None) -> PolicyError:
        """This error with a location, unless it already has one."""
        if self.filename is not None:
            return self
        return PolicyError(self.message, filename, lineno)

    def __str__(self) -> str:
        if self.filename is None:
            return self.message
        if self.lineno is None:
            return f"{self.filename}: {self.message}"
        return f"{self.filename}:{self.lineno}: {self.message}"


class NetError(ZfwError):
    """A socket operation failed for a reason an administrator can fix."""
