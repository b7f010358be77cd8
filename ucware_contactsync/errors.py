"""Errors an admin sees: one line saying what happened and what to do, plus the exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1  # some users failed, the rest synced
EXIT_CONFIG = 2  # usage or configuration error
EXIT_LOCKED = 75  # another run holds the lock (EX_TEMPFAIL)


class ContactSyncError(Exception):
    """Base of all errors shown to the admin as one line."""

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class UsageError(ContactSyncError):
    """Wrong command line or input file."""


class ConfigError(ContactSyncError):
    """A key in the key-value store is missing or invalid."""


class DatabaseError(ContactSyncError):
    """The database cannot be reached or has no schema yet."""

    full = False  # the database's disk is full


class AuthError(ContactSyncError):
    """The app cannot get a token: tenant, client id or secret is wrong (affects all users)."""


class LockedError(ContactSyncError):
    exit_code = EXIT_LOCKED
