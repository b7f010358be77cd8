"""Errors an admin sees: one line saying what happened and what to do, plus the exit code.

The exit code belongs to the type (``code``); nothing patches it onto an instance.
``sources.SourceError`` is one of them too: its code follows its ``Kind``.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_PARTIAL = 1  # some users failed, the rest synced; or a temporary failure
EXIT_CONFIG = 2  # usage or configuration error
EXIT_LOCKED = 75  # another run holds the lock (EX_TEMPFAIL)


class ContactSyncError(Exception):
    """Base of all errors shown to the admin as one line."""

    code: ClassVar[int] = EXIT_CONFIG

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return self.code

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(ContactSyncError):
    """Wrong command line or input file."""


class ConfigError(ContactSyncError):
    """A key in the key-value store is missing or invalid."""


class DatabaseError(ContactSyncError):
    """The database cannot be reached or has no schema yet."""


class DatabaseUnavailable(DatabaseError):
    """The database failed while working (server gone): temporary, running again is safe."""

    code = EXIT_PARTIAL


class DatabaseFull(DatabaseUnavailable):
    """The database's disk is full."""


class LockedError(ContactSyncError):
    code = EXIT_LOCKED
