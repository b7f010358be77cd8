"""EWS through exchangelib: Exchange Server on-premises, and Exchange Online until 2027-03-31.

Reads use SyncFolderItems only: from an empty state it returns every item with the fields we
name (a full read and the next run's state in one pass, 512 items a page), from a stored state
just the changes. Each page is one retry unit, so a throttled or dropped page is repeated, not
the whole mailbox.

exchangelib traps handled here (see docs/development.md, "exchangelib traps we handle"):
* what we override or replace in exchangelib lives in ``exchangelib_patches.py`` (token
  expiry, HTTP 429, cut SOAP answers, the session-pool deadlock, TLS trust); this source
  applies it when it is built;
* tokens are fetched before each page outside exchangelib, so a failing token endpoint
  surfaces as our error and never strands a pooled session (the session-pool hang);
* HTTP 429 becomes ErrorServerBusy with Retry-After, and is retried by us;
* folders are looked up with ``get_distinguished`` (no class-level lock across accounts);
* only the fields we store are requested (never the 116 default properties).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from exchangelib import (
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    Build,
    Configuration,
    Credentials,
    OAuth2Credentials,
    Version,
)
from exchangelib import errors as ews_errors
from exchangelib.fields import FieldPath
from exchangelib.folders import Contacts, Root
from exchangelib.items import Contact as EwsContact
from exchangelib.properties import DistinguishedFolderId, FolderId
from exchangelib.properties import Mailbox as EwsMailbox
from exchangelib.protocol import close_connections
from oauthlib.oauth2 import InvalidClientIdError, TokenExpiredError
from tenacity import RetryCallState, Retrying, retry_if_exception
from tenacity.stop import stop_base

from ..contact import EWS_LABELS, NUMBER_TYPES, Contact, PhoneNumber
from ..settings import Settings
from . import exchangelib_patches
from .auth import TokenProvider, token_provider
from .base import (
    HINT_MISSING,
    HINT_THROTTLED,
    HINT_TLS,
    ContactSource,
    Kind,
    MailboxRead,
    SourceError,
    canonical_id,
    first_line,
)
from .exchangelib_patches import (
    ContactChanges,
    ContactFields,
    FolderChanges,
    ProviderCredentials,
    RetryPolicy,
)
from .onprem import LogonGuard

log = logging.getLogger(__name__)

FIELDS = ContactFields.FIELDS
PAGE = 512  # SyncFolderItems maximum
BACKOFF = 0.5  # first back-off step (s) for retries the server gave no delay for; doubles
EWS_VERSION = Version(build=Build(15, 1, 2507, 6), api_version="Exchange2016")
_ORDER = {t: i for i, t in enumerate(NUMBER_TYPES)}
_HTTP_FAILURE = re.compile(r"Unknown failure in response\. Code: (\d+)")
_ADDITIONAL = {FieldPath(field=EwsContact.get_field_by_fieldname(f)) for f in FIELDS}
CONTACTS = "contacts"  # state key of the Contacts folder: its distinguished id
HIERARCHY = "#hierarchy"  # state key of the SyncFolderHierarchy state below Contacts
T = TypeVar("T")

# Errors worth another try of the same request.
TRANSIENT = (
    ews_errors.ErrorServerBusy,
    ews_errors.ErrorTimeoutExpired,
    ews_errors.ErrorInternalServerTransientError,
    ews_errors.ErrorInternalServerError,
    ews_errors.MalformedResponseError,
    ews_errors.RateLimitError,
    TokenExpiredError,
    InvalidClientIdError,  # AADSTS900144 from a stray refresh attempt: the next call works
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _untrusted(exc: BaseException) -> bool:
    """The server's certificate was not trusted (no retry helps; ca_bundle does)."""
    return "certificate" in str(exc).lower() and isinstance(
        exc, requests.exceptions.SSLError | ews_errors.TransportError)


def _contacts_id(mailbox: str) -> DistinguishedFolderId:
    return DistinguishedFolderId(id=CONTACTS, mailbox=EwsMailbox(email_address=mailbox))


class _Deadline(stop_base):
    """Stop retrying when the mailbox's total time is used up, or after ``attempts`` tries of
    anything but throttling."""

    def __init__(self, deadline: float, attempts: int) -> None:
        self.deadline = deadline
        self.attempts = attempts

    def __call__(self, state: RetryCallState) -> bool:
        if time.monotonic() >= self.deadline:
            return True
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ews_errors.ErrorServerBusy):
            return False
        return state.attempt_number >= self.attempts


def _wait(deadline: float) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        back_off = getattr(exc, "back_off", None)
        # exchangelib re-raises dropped connections as ErrorServerBusy with its own 10 s
        # guess; only a server's BackOffMilliseconds / Retry-After is honoured as given.
        if back_off and str(exc).startswith("Reraised from"):
            back_off = None
        delay = float(back_off) if back_off else min(8.0, BACKOFF * 2 ** (state.attempt_number - 1))
        return max(0.0, min(delay, deadline - time.monotonic()))

    return wait


class EwsSource(ContactSource):
    api = "ews"

    def __init__(self, settings: Settings, tokens: TokenProvider | None = None,
                 include_subfolders: bool = True, max_wait: float = 300.0) -> None:
        self.settings = settings
        self.include_subfolders = include_subfolders
        self.max_wait = max_wait
        self.on_premises = not settings.office365
        self.logon: LogonGuard | None = None
        exchangelib_patches.apply(settings.ews_url, settings.verify)
        if self.on_premises:
            if not settings.ews_username or not settings.ews_password:
                raise SourceError(Kind.AUTH, "on-premises Exchange needs a service account",
                                  "set ews_username and ews_password (office365=false)")
            self.tokens = None
            self.logon = LogonGuard(settings.ews_username)
            creds: Credentials | OAuth2Credentials = Credentials(
                settings.ews_username, settings.ews_password)
            auth_type = NTLM
        else:
            self.tokens = tokens or token_provider(settings, settings.ews_url)
            creds = ProviderCredentials(self.tokens, settings.tenant_id)
            auth_type = OAUTH2
        self.config = Configuration(
            service_endpoint=settings.ews_url, credentials=creds, auth_type=auth_type,
            version=EWS_VERSION, retry_policy=RetryPolicy(),
            max_connections=max(2, settings.max_workers * 2),
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _account(self, mailbox: str) -> Account:
        return Account(mailbox, access_type=IMPERSONATION, config=self.config,
                       autodiscover=False)

    def _call(self, mailbox: str, deadline: float, fn: Callable[[], T]) -> T:
        """Run one request (or page) with retries; translate what is left into SourceError."""

        def before(state: RetryCallState) -> None:
            if self.tokens is not None:
                self.tokens.token()  # fetch outside exchangelib, see module doc

        retrying = Retrying(
            stop=_Deadline(deadline, attempts=4),
            wait=_wait(deadline),
            retry=retry_if_exception(lambda e: isinstance(e, TRANSIENT) and not _untrusted(e)),
            before=before,
            reraise=True,
        )
        logon = self.logon
        try:
            return retrying(fn if logon is None else lambda: logon.run(fn))
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes one SourceError
            raise self._translate(mailbox, exc) from exc

    def _translate(self, mailbox: str, exc: Exception) -> SourceError:
        if isinstance(exc, ews_errors.ErrorNonExistentMailbox):
            return SourceError(Kind.MAILBOX_MISSING, f"mailbox {mailbox} does not exist",
                               HINT_MISSING)
        if isinstance(exc, ews_errors.ErrorImpersonateUserDenied | ews_errors.ErrorAccessDenied):
            hint = ("give the service account the ApplicationImpersonation role, or widen "
                    "its management scope to this mailbox" if self.on_premises else
                    "grant the app full_access_as_app (Office 365 Exchange Online) with admin "
                    "consent, or check that the mailbox is not excluded by an access policy")
            return SourceError(Kind.ACCESS_DENIED, f"access to mailbox {mailbox} denied", hint)
        if isinstance(exc, ews_errors.ErrorInvalidSyncStateData):
            return SourceError(Kind.STATE_INVALID, f"stored sync state of {mailbox} is invalid")
        if isinstance(exc, ews_errors.UnauthorizedError):
            hint = ("check ews_username and ews_password" if self.on_premises else
                    "the token was refused: grant the app full_access_as_app with admin "
                    "consent, or use Microsoft Graph (grant Contacts.Read, api=auto)")
            return SourceError(Kind.AUTH, f"EWS refused the credentials for {mailbox}", hint)
        if isinstance(exc, ews_errors.ErrorServerBusy):
            return SourceError(Kind.THROTTLED, f"Exchange kept throttling {mailbox} for "
                               f"{self.max_wait:.0f} s", HINT_THROTTLED)
        if isinstance(exc, requests.exceptions.SSLError) or (
                isinstance(exc, ews_errors.TransportError)
                and ("SSL" in str(exc) or "certificate" in str(exc).lower())):
            # An untrusted certificate is the same for every mailbox: stop the run with one
            # line, as Graph and the token endpoint do; a broken handshake may pass.
            kind = Kind.AUTH if _untrusted(exc) else Kind.TRANSIENT
            return SourceError(kind, f"TLS error talking to {self.settings.ews_url}", HINT_TLS)
        what = f"{type(exc).__name__}: {first_line(exc)}"
        status = _HTTP_FAILURE.match(str(exc))
        if isinstance(exc, ews_errors.MalformedResponseError) and status:
            # exchangelib's text carries the headers dict and the body start: keep the status.
            what = f"HTTP {status.group(1)} without an EWS answer"
        return SourceError(Kind.TRANSIENT, f"EWS request for {mailbox} failed: {what}",
                           "the next run retries; check ews_url and the Exchange server if it "
                           "persists")

    # -- reading ----------------------------------------------------------------------------

    def _subfolders(self, account: Account, mailbox: str, states: Mapping[str, str],
                    deadline: float, read: MailboxRead) -> list[str]:
        """Ids of the contact folders below Contacts, from SyncFolderHierarchy: the whole tree
        on a full read, only the changes since the stored hierarchy state otherwise (one
        request that usually says "nothing changed")."""
        known = [f for f in states if f not in (CONTACTS, HIERARCHY)]
        start = states.get(HIERARCHY)
        if states and start is None:
            raise SourceError(Kind.STATE_INVALID, f"no folder state of {mailbox} stored yet")
        folders = dict.fromkeys(known)
        while True:
            def page(start: str | None = start) -> tuple[list[tuple[str, str, str]], str, bool]:
                svc = FolderChanges(account=account)
                changes = list(svc.call(folder=_contacts_id(mailbox), shape="AllProperties",
                                        additional_fields=None, sync_state=start))
                return changes, svc.sync_state, svc.includes_last_item_in_range

            changes, state, last = self._call(mailbox, deadline, page)
            read.requests += 1
            for change, fid, folder_class in changes:
                if change == "delete" or not folder_class.startswith("IPF.Contact"):
                    if fid in folders:
                        # Only a full read can remove the entries of a vanished folder.
                        raise SourceError(Kind.STATE_INVALID,
                                          f"a contacts folder of {mailbox} was removed")
                    continue
                folders.setdefault(fid)  # a new folder: read from scratch below
            if last or state == start:
                read.states[HIERARCHY] = state
                return list(folders)
            start = state

    def _sync_folder(self, account: Account, mailbox: str, folder_id: str, state: str | None,
                     deadline: float, read: MailboxRead) -> str:
        """All changes of one folder since ``state``; pages retried one at a time."""
        folder = _contacts_id(mailbox) if folder_id == CONTACTS else FolderId(id=folder_id)
        while True:
            def page(state: str | None = state) -> tuple[list[tuple[str, Any]], str, bool]:
                svc = ContactChanges(account=account)
                changes = list(svc.call(folder=folder, shape="IdOnly",
                                        additional_fields=_ADDITIONAL, sync_state=state,
                                        ignore=None, max_changes_returned=PAGE,
                                        sync_scope=None))
                return changes, svc.sync_state, svc.includes_last_item_in_range

            changes, new_state, last = self._call(mailbox, deadline, page)
            read.requests += 1
            for change, item in changes:
                if isinstance(item, Exception):
                    raise self._translate(mailbox, item)
                if change in ("create", "update"):
                    if isinstance(item, ContactFields):
                        read.contacts.append(to_contact(item, folder_id))
                    else:
                        read.skipped += 1
                elif change == "delete":
                    read.deleted.append(canonical_id(item.id))
            if last or new_state == state:
                return new_state
            state = new_state

    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        """Contacts and its subfolders, addressed by the distinguished id: no GetFolder or
        FindFolder round trips; an unchanged mailbox costs one SyncFolderHierarchy and one
        SyncFolderItems per folder."""
        deadline = time.monotonic() + self.max_wait
        account = self._account(mailbox)
        states = states or {}
        if states and CONTACTS not in states:
            raise SourceError(Kind.STATE_INVALID, f"no state of {mailbox}'s Contacts folder")
        result = MailboxRead(api=self.api, full=not states)
        folders = [CONTACTS]
        if self.include_subfolders:
            folders += self._subfolders(account, mailbox, states, deadline, result)
        elif set(states) - {CONTACTS}:
            raise SourceError(Kind.STATE_INVALID, "subfolders are no longer read")
        for fid in folders:
            result.states[fid] = self._sync_folder(account, mailbox, fid, states.get(fid),
                                                   deadline, result)
        return result

    def check(self, mailbox: str) -> None:
        deadline = time.monotonic() + min(self.max_wait, 60.0)
        account = self._account(mailbox)
        root = self._call(mailbox, deadline, lambda: Root.get_distinguished(account=account))
        self._call(mailbox, deadline, lambda: Contacts.get_distinguished(root=root))

    def close(self) -> None:
        close_connections()


def to_contact(item: EwsContact | ContactFields, folder_id: str | None = None) -> Contact:
    numbers: list[PhoneNumber] = []
    for entry in item.phone_numbers or ():
        kind = EWS_LABELS.get(entry.label or "")
        text = (entry.phone_number or "").strip()
        # One number per type, the first: an entry holds one per type, and a Graph read of
        # the same item gives the same (a server repeating keys must not make 500 numbers).
        if kind and text and all(n.type != kind for n in numbers):
            numbers.append(PhoneNumber(kind, text))
    numbers.sort(key=lambda n: _ORDER[n.type])
    emails = tuple(e.email.strip() for e in sorted(item.email_addresses or (),
                                                   key=lambda e: e.label or "")
                   if e.email and e.email.strip())
    return Contact(
        display_name=(item.display_name or "").strip(),
        given_name=(item.given_name or "").strip(),
        surname=(item.surname or "").strip(),
        company=(item.company_name or "").strip(),
        department=(item.department or "").strip(),
        job_title=(item.job_title or "").strip(),
        emails=emails,
        numbers=tuple(numbers),
        categories=tuple(item.categories or ()),
        source_id=canonical_id(item.id),
        change_key=item.changekey,
        folder=folder_id,
    )
