"""The ``ContactSource`` interface every mailbox source implements.

A source reads one mailbox at a time and knows nothing of phonebooks or databases. The sync
engine gives it the states stored after the previous run and gets back either the complete
content of the mailbox (a *full* read) or only what changed (an *incremental* read), plus the
new states to store once the phonebook is written.

Failures are raised as ``SourceError`` with a ``Kind`` the engine acts on: ``AUTH`` stops the
whole run (no mailbox can be read with a bad secret), ``STATE_INVALID`` makes the engine retry
that mailbox with a full read, every other kind fails only that mailbox.
"""

from __future__ import annotations

import email.utils
import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from ..contact import Contact
from ..errors import EXIT_CONFIG, EXIT_PARTIAL, ContactSyncError

if TYPE_CHECKING:
    from ..settings import Settings
    from .auth import TokenProvider

# Hints shared by the sources (each says what the admin does about it).
HINT_MISSING = ("the user's e-mail on the UC server must equal the primary SMTP address of "
                "the mailbox")
HINT_TLS = "if the server uses a private CA, set ca_bundle to its PEM file"
HINT_THROTTLED = "the next run continues; lower max_workers if this repeats"


class Kind(enum.Enum):
    MAILBOX_MISSING = "mailbox missing"
    ACCESS_DENIED = "access denied"
    THROTTLED = "throttled"
    AUTH = "authentication failed"
    TRANSIENT = "temporary failure"
    STATE_INVALID = "sync state invalid"


class SourceError(ContactSyncError):
    """A mailbox (or, for AUTH, the whole app) cannot be read; ``hint`` says what to do.

    Raised before any mailbox was read (choosing the API), it ends the command: exit 2 for
    ``AUTH`` (the app's credentials are wrong), else exit 1 (an outage; the next run may work).
    """

    code = EXIT_PARTIAL

    def __init__(self, kind: Kind, message: str, hint: str = "", retry_after: float = 0.0):
        super().__init__(message, hint)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def exit_code(self) -> int:
        return EXIT_CONFIG if self.kind is Kind.AUTH else self.code


@dataclass
class MailboxRead:
    """The result of reading one mailbox.

    ``full``: ``contacts`` is everything; entries missing from it are to be removed.
    Incremental: ``contacts`` are created or changed items, ``deleted`` the ids of removed ones.
    ``states``: folder id -> state to store after a successful write (replaces all old ones).
    """

    api: str
    full: bool
    contacts: list[Contact] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    skipped: int = 0  # distribution lists and the like
    requests: int = 0


class ContactSource(ABC):
    """Reads the contacts of mailboxes. Implementations must be safe to call from threads."""

    api: str = ""  # its key in ``registry.SOURCES``
    # How many mailboxes ahead of their reads the engine announces through ``prefetch``.
    prefetch_window: int = 0

    def __init__(self, settings: Settings, tokens: TokenProvider | None = None,
                 include_subfolders: bool = True) -> None:
        """How ``open_source`` builds every source: ``tokens`` are the app's Entra tokens for
        this API (None: the source makes its own or signs in otherwise)."""
        self.settings = settings
        self.include_subfolders = include_subfolders

    @abstractmethod
    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        """Read ``mailbox`` (primary SMTP). ``states`` None or empty means a full read.

        Raises ``SourceError``. An invalid stored state raises ``Kind.STATE_INVALID`` (the
        engine then calls again with ``states=None``).
        """

    def prefetch(  # noqa: B027 - optional hook
            self, jobs: Sequence[tuple[str, Mapping[str, str] | None]]) -> None:
        """Mailboxes (with their stored states) that ``read`` will be called for soon, in
        that order. A source may start their requests now, e.g. to batch them; the default
        does nothing, and ``read`` must work whether or not ``prefetch`` was called."""

    def check(self, mailbox: str) -> None:
        """Cheapest request that proves the mailbox can be read; raises ``SourceError``."""
        self.read(mailbox, None)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def canonical_id(item_id: str) -> str:
    """One spelling for an item id whichever API delivered it.

    Graph ids are the EWS ids in URL-safe base64 (``-`` and ``_`` for ``+`` and ``/``); we
    store the Graph spelling, so switching a tenant from EWS to Graph keeps every entry.
    """
    return item_id.replace("+", "-").replace("/", "_")


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text, for one-line messages."""
    text = str(exc).strip().splitlines()
    return text[0][:limit] if text else type(exc).__name__


def retry_after(resp: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None if absent or garbled."""
    raw = (resp.headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
