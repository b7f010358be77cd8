"""Microsoft Graph v1.0: app-only contact reads of Exchange Online mailboxes (``Contacts.Read``).

What one read sends (``{m}`` = ``{graph_url}/v1.0/users/{mailbox}``):

* folders: the default folder is addressed as ``{m}/contacts`` (no lookup of its id); with
  ``include_subfolders``, ``GET {m}/contactFolders`` (its children), then
  ``GET {m}/contactFolders/{id}/childFolders`` for every folder found, depth first, parents
  before children (the order EWS gives);
* full read, per folder: first a delta round (``{m}/contacts/delta`` or
  ``{m}/contactFolders/{id}/contacts/delta``, ``$select=id``, ``Prefer: odata.maxpagesize=200``)
  up to its ``@odata.deltaLink``, then the listing (``{m}/contacts`` or
  ``{m}/contactFolders/{id}/contacts`` with ``$select`` of the stored fields,
  ``$expand=singleValueExtendedProperties(…)`` for the hidden number types, ``$top=1000``).
  Delta before listing on purpose: a change in between shows up in the listing *and* again in
  the next incremental read (harmless), never in neither;
* incremental read: the stored deltaLink of each folder, followed to the new deltaLink;
  ``@removed`` entries are deletions, every other entry is fetched with
  ``GET {m}/contacts/{id}?$select=…&$expand=…`` ($expand is not documented on delta), at most
  four at a time (Graph's MailboxConcurrency per app and mailbox). A folder with 50 or more
  changes (an import, a bulk edit) is listed once instead. An item reported removed in one
  folder and changed in another was moved: it stays. A changed item whose GET answers 404
  stays too, and its folder keeps the old delta link (the next run sees an ``@removed`` or
  the item). A vanished or new folder, a 410 (or a stored state that is no delta link of
  graph_url) raise ``Kind.STATE_INVALID``.

Each read owns a ``requests.Session`` (so parallel reads of different mailboxes share nothing
mutable) and a wait budget of ``max_wait`` seconds: 429 and 503 are retried after
``Retry-After`` (exponential back-off without it) until the budget is spent, then
``Kind.THROTTLED``; dropped connections, timeouts and other 5xx a few times, then
``Kind.TRANSIENT``. A pause ordered by Graph holds all requests of that mailbox, not only the
one that got it. A 401 drops the provider's token and repeats the request once (the token
expired in flight), a second 401 is ``Kind.AUTH``.
"""

from __future__ import annotations

import http.cookiejar
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from .. import __version__
from ..contact import NUMBER_TYPES, Contact, PhoneNumber
from ..settings import Settings
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
    retry_after,
)
from .origin import OriginAdapter, mount

log = logging.getLogger(__name__)

CONTACT_TYPE = "#microsoft.graph.contact"
# Only the fields we store: Graph's default contact has ~40 properties.
SELECT = ",".join((
    "id", "changeKey", "displayName", "givenName", "surname", "companyName", "department",
    "jobTitle", "emailAddresses", "businessPhones", "homePhones", "mobilePhone", "categories",
))
# MAPI string properties for the number types v1.0 does not show (notes/graph-contacts.md).
EXTENDED_NUMBERS: dict[str, str] = {
    "0x3A24": "business_fax",
    "0x3A25": "home_fax",
    "0x3A23": "other_fax",
    "0x3A21": "pager",
    "0x3A1F": "other",
    "0x3A2E": "assistant",
    "0x3A02": "callback",
    "0x3A1E": "car",
    "0x3A57": "company_main",
    "0x3A1D": "radio",
    "0x3A2C": "telex",
    "0x3A4B": "tty",
    "0x3A2D": "isdn",
    "0x3A1A": "primary",
    # Not hidden, but businessPhones / homePhones are lists without slots: a contact with
    # only Business Phone 2 would come back as "business". These two tell the slots apart.
    "0x3A1B": "business2",
    "0x3A2F": "home2",
}
_EXT_BY_ID = {f"string {tag}".lower(): t for tag, t in EXTENDED_NUMBERS.items()}
EXPAND = ("singleValueExtendedProperties($filter="
          + " or ".join(f"id eq 'String {tag}'" for tag in EXTENDED_NUMBERS) + ")")
CONTACTS = "contacts"  # key of the default contacts folder (Graph: {m}/contacts)
DELTA_PAGE = 200  # Graph's maximum for contact delta pages
MAILBOX_CONCURRENCY = 4  # Graph allows 4 concurrent requests per app and mailbox
BULK_CHANGES = 50  # from this many changes in one folder, list it rather than GET each item
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
CHECK_MAX_WAIT = 60.0
_ORDER = {t: i for i, t in enumerate(NUMBER_TYPES)}

HINT_NO_REST = ("the mailbox is on-premises, inactive or has no Exchange Online license: "
                "read on-premises mailboxes with api=ews (office365=false), or license it")
HINT_DENIED = ("grant the app the Microsoft Graph application permission Contacts.Read with "
               "admin consent; if RBAC for Applications scopes the app, add this mailbox to "
               "its management scope")
HINT_TOKEN = ("Graph refused the app's token: check that the app has the Microsoft Graph "
              "application permission Contacts.Read with admin consent, and graph_url")
HINT_TRANSIENT = "the next run retries; check network access to graph_url if it persists"
HINT_BUG = "unexpected answer from Microsoft Graph; report it with the -vv log if it persists"


class _Retry(Exception):
    """An attempt worth repeating. ``kind``: throttled | transient | auth."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


class GraphSource(ContactSource):
    """Reads contacts through Microsoft Graph; one instance serves parallel reads."""

    api = "graph"
    # Knobs, class attributes so tests can shrink them on an instance.
    page_size = 1000  # $top of plain listings (Graph's maximum)
    transient_attempts = 4  # tries for dropped connections / 5xx without Retry-After
    backoff = 0.5  # first back-off step (s) for transient errors; doubles, at most 8 s

    def __init__(self, settings: Settings, tokens: TokenProvider | None = None,
                 include_subfolders: bool = True, max_wait: float = 300.0) -> None:
        self.settings = settings
        self.graph_url = settings.graph_url.rstrip("/")
        self.tokens = tokens or token_provider(settings, settings.graph_url)
        self.include_subfolders = include_subfolders
        self.max_wait = max_wait
        self._origin = _origin(self.graph_url)
        self._lock = threading.Lock()
        self._sessions: set[requests.Session] = set()

    def __repr__(self) -> str:
        return f"GraphSource({self.graph_url!r}, subfolders={self.include_subfolders})"

    # -- public API -----------------------------------------------------------------------------

    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        with _Call(self, mailbox, self.max_wait) as call:
            folders = self._folders(call)
            if states:
                result = self._incremental(call, folders, states)
            else:
                result = self._full(call, folders)
            result.requests = call.requests
            log.debug("graph %s: %s read, %d contacts, %d deleted, %d requests, %.1f s waited",
                      mailbox, "full" if result.full else "incremental", len(result.contacts),
                      len(result.deleted), call.requests, call.waited)
            return result

    def check(self, mailbox: str) -> None:
        """One GET of the default contacts folder: proves token, permission and mailbox."""
        with _Call(self, mailbox, min(self.max_wait, CHECK_MAX_WAIT)) as call:
            call.get(f"{call.base}/contactFolders/contacts", {"$select": "id"})

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions), set()
        for s in sessions:
            s.close()

    # -- sessions (used by _Call) -----------------------------------------------------------------

    def _open_session(self) -> requests.Session:
        s = requests.Session()
        # Graph sets no cookies we need; a jar that accepts none stays immutable, so the
        # fetch workers of one read can share the session without locking.
        s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        # Only graph_url's origin: a redirect elsewhere fails the mailbox (origin.py).
        mount(s, OriginAdapter(self.graph_url, "graph_url", pool_connections=1,
                               pool_maxsize=MAILBOX_CONCURRENCY))
        s.headers.update({"User-Agent": f"ucware-contactsync/{__version__}",
                          "Accept": "application/json"})
        with self._lock:
            self._sessions.add(s)
        return s

    def _close_session(self, s: requests.Session) -> None:
        with self._lock:
            self._sessions.discard(s)
        s.close()

    # -- folders --------------------------------------------------------------------------------

    def _folders(self, call: _Call) -> list[str]:
        """``CONTACTS`` (the default folder) and, optionally, the ids of all folders below it.

        Depth first, parents before children: the order EWS's folder hierarchy gives.
        """
        if not self.include_subfolders:
            return [CONTACTS]
        found: list[str] = []
        stack = [CONTACTS]
        while stack:
            fid = stack.pop()
            found.append(fid)
            url = (f"{call.base}/contactFolders" if fid == CONTACTS
                   else f"{call.base}/contactFolders/{_seg(fid)}/childFolders")
            children = [str(f["id"]) for page in call.pages(
                url, {"$select": "id,displayName", "$top": "1000"})
                for f in page.get("value", [])]
            stack.extend(reversed(children))  # so the first child comes next
        return found

    # -- full read ------------------------------------------------------------------------------

    def _full(self, call: _Call, folders: list[str]) -> MailboxRead:
        result = MailboxRead(api=self.api, full=True)
        for fid in folders:
            result.states[canonical_id(fid)] = self._start_delta(call, fid)
            for data in self._list(call, fid):
                if _is_contact(data):
                    result.contacts.append(to_contact(data, canonical_id(fid)))
                else:
                    result.skipped += 1
        return result

    def _start_delta(self, call: _Call, fid: str) -> str:
        """Run a first delta round over the folder (ids only) and return its deltaLink."""
        url = f"{_items(call, fid)}/delta"
        for page in call.pages(url, {"$select": "id"}, delta=True):
            if "@odata.deltaLink" in page:
                return str(page["@odata.deltaLink"])
        raise SourceError(Kind.TRANSIENT, f"Graph ended the delta round of {call.mailbox} "
                          "without a deltaLink", HINT_BUG)

    # -- incremental read -----------------------------------------------------------------------

    def _incremental(self, call: _Call, folders: list[str], states: Mapping[str, str]
                     ) -> MailboxRead:
        current = [canonical_id(f) for f in folders]
        gone = set(states) - set(current)
        new = [f for f in current if f not in states]
        if gone:
            # Only a full read can remove the entries of a vanished folder.
            raise SourceError(Kind.STATE_INVALID, f"{len(gone)} contacts folder(s) of "
                              f"{call.mailbox} were removed since the last run")
        if new:
            raise SourceError(Kind.STATE_INVALID, f"{len(new)} new contacts folder(s) in "
                              f"{call.mailbox} have no sync state yet")
        if any(_origin(str(states[f])) != self._origin for f in current):
            # e.g. an EWS SyncState after switching api, or graph_url changed.
            raise SourceError(Kind.STATE_INVALID, f"the stored state of {call.mailbox} is "
                              f"not a delta link of {self.graph_url}")
        result = MailboxRead(api=self.api, full=False)
        changed: dict[str, str] = {}  # Graph id -> folder id (a moved item: its new folder)
        removed: list[str] = []
        for fid in current:
            new_link = ""
            for page in call.pages(str(states[fid]), None, delta=True, state_link=True):
                for data in page.get("value", []):
                    gid = str(data.get("id", ""))
                    if not gid:
                        continue
                    if "@removed" in data:
                        removed.append(gid)
                    elif _is_contact(data):
                        changed[gid] = fid
                    else:
                        result.skipped += 1
                new_link = str(page.get("@odata.deltaLink") or new_link)
            if not new_link:
                raise SourceError(Kind.TRANSIENT, f"Graph ended the delta round of "
                                  f"{call.mailbox} without a deltaLink", HINT_BUG)
            result.states[fid] = new_link
        fetched = self._changed_items(call, changed)
        kept: set[str] = set()
        for (gid, fid), data in zip(changed.items(), fetched, strict=True):
            kept.add(canonical_id(gid))
            if data is None:
                # 404 for an item the delta just reported changed: deleted since, or not
                # readable this moment. Neither delete its entry nor move past the change:
                # this folder keeps its old delta link, and the next run reads the truth
                # (an @removed, or the item) from there.
                result.states[fid] = str(states[fid])
                log.info("graph %s: a changed contact answered 404; its folder is read "
                         "again from the same delta link next run", call.mailbox)
                continue
            if _is_contact(data):
                result.contacts.append(to_contact(data, fid))
            else:
                result.skipped += 1
        # A move shows as removed in one folder and added in another: keep it, don't delete.
        seen: set[str] = set()
        for gid in removed:
            cid = canonical_id(gid)
            if cid not in kept and cid not in seen:
                seen.add(cid)
                result.deleted.append(cid)
        return result

    def _changed_items(self, call: _Call, changed: dict[str, str]
                       ) -> list[dict[str, Any] | None]:
        """The changed items in ``changed`` order (None: gone since the delta page).

        One GET per item; but a folder with BULK_CHANGES or more changes (an import, a bulk
        edit) is listed instead, which costs one request per 1000 items.
        """
        per_folder: dict[str, int] = {}
        for fid in changed.values():
            per_folder[fid] = per_folder.get(fid, 0) + 1
        found: dict[str, dict[str, Any] | None] = {}
        for fid, count in per_folder.items():
            if count >= BULK_CHANGES:
                for data in self._list(call, fid):
                    gid = str(data.get("id", ""))
                    if changed.get(gid) == fid:
                        found[gid] = data
        # Not in its folder's listing (moved or deleted meanwhile, or no listing): fetch it.
        rest = [gid for gid in changed if gid not in found]
        found.update(zip(rest, self._fetch_all(call, rest), strict=True))
        return [found.get(gid) for gid in changed]

    def _list(self, call: _Call, fid: str) -> Iterator[dict[str, Any]]:
        """Every item of one folder with all fields we store."""
        for page in call.pages(_items(call, fid),
                               {"$select": SELECT, "$expand": EXPAND,
                                "$top": str(self.page_size)}):
            yield from page.get("value", [])

    def _fetch_all(self, call: _Call, ids: list[str]) -> list[dict[str, Any] | None]:
        """GET each changed item (None: gone), at most MAILBOX_CONCURRENCY at a time; in order."""
        if len(ids) <= 1:
            return [self._fetch(call, gid) for gid in ids]
        pool = ThreadPoolExecutor(max_workers=min(MAILBOX_CONCURRENCY, len(ids)),
                                  thread_name_prefix="graph-fetch")
        try:
            futures = [pool.submit(self._fetch, call, gid) for gid in ids]
            return [f.result() for f in futures]
        finally:
            # On the first error drop what has not started; in-flight requests end by themselves.
            pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _fetch(call: _Call, gid: str) -> dict[str, Any] | None:
        return call.find(f"{call.base}/contacts/{_seg(gid)}",
                         {"$select": SELECT, "$expand": EXPAND})


class _Call:
    """One read (or check) of one mailbox: session, request count and the wait budget.

    Shared by the fetch workers of the read, hence the lock around counters and budget.
    """

    def __init__(self, source: GraphSource, mailbox: str, max_wait: float) -> None:
        self.source = source
        self.mailbox = mailbox
        self.base = f"{source.graph_url}/v1.0/users/{quote(mailbox, safe='@')}"
        self.max_wait = max_wait
        self.lock = threading.Lock()
        self.requests = 0
        self.waited = 0.0
        self.pause_until = 0.0  # time.monotonic(): Graph asked this mailbox to pause till then
        self.session = source._open_session()

    def __enter__(self) -> _Call:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source._close_session(self.session)

    # -- paging ---------------------------------------------------------------------------------

    def pages(self, url: str, params: dict[str, str] | None, delta: bool = False,
              state_link: bool = False) -> Iterator[dict[str, Any]]:
        """Pages of a collection: the first from ``url`` + ``params``, then each nextLink."""
        while True:
            page = self.get(url, params, delta=delta, state_link=state_link)
            yield page
            nxt = page.get("@odata.nextLink")
            if not nxt:
                return
            url, params, state_link = str(nxt), None, False  # nextLinks carry all parameters
            if _origin(url) != self.source._origin:
                # Never send our bearer token to a host we were not configured for.
                raise SourceError(Kind.TRANSIENT, f"Graph sent a nextLink to another host "
                                  f"({_origin(url)}) for {self.mailbox}", HINT_BUG)

    # -- one GET with retries --------------------------------------------------------------------

    def get(self, url: str, params: dict[str, str] | None = None, *, delta: bool = False,
            state_link: bool = False) -> dict[str, Any]:
        """GET JSON; retried per the module doc; every other failure becomes a SourceError.

        ``state_link``: a 404/400 means the stored delta link is unusable (STATE_INVALID).
        """
        body = self._get(url, params, delta, state_link, missing_ok=False)
        if body is None:  # cannot happen without missing_ok; keeps type checkers honest
            raise SourceError(Kind.TRANSIENT, f"Graph answered {url} with nothing", HINT_BUG)
        return body

    def find(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """Like get, but a 404 of the item gives None (deleted in the meantime)."""
        return self._get(url, params, False, False, missing_ok=True)

    def _get(self, url: str, params: dict[str, str] | None, delta: bool, state_link: bool,
             missing_ok: bool) -> dict[str, Any] | None:
        tries = {"transient": 0, "auth": 0}

        def wait(rs: RetryCallState) -> float:
            exc = _retry_exc(rs)
            if exc.kind == "auth":
                return 0.0
            if exc.retry_after is not None:
                return max(0.0, exc.retry_after)
            if exc.kind == "throttled":
                return float(min(60, 2 ** (rs.attempt_number - 1)))
            return float(min(8.0, self.source.backoff * 2 ** (tries["transient"] - 1)))

        def stop(rs: RetryCallState) -> bool:
            exc = _retry_exc(rs)
            if exc.kind == "transient" and tries["transient"] >= self.source.transient_attempts:
                return True
            return not self._reserve(rs.upcoming_sleep)

        def before_sleep(rs: RetryCallState) -> None:
            exc = _retry_exc(rs)
            log.log(logging.INFO if exc.kind == "throttled" else logging.DEBUG,
                    "graph %s: %s; retrying in %.1f s", self.mailbox, exc.message,
                    max(0.0, self.pause_until - time.monotonic()))

        retrying = Retrying(retry=retry_if_exception_type(_Retry), wait=wait, stop=stop,
                            sleep=self._pause, before=lambda rs: self._pause(0.0),
                            before_sleep=before_sleep, reraise=True)
        try:
            return retrying(self._attempt, url, params, delta, state_link, missing_ok, tries)
        except _Retry as exc:
            raise self._gave_up(exc) from None

    def _reserve(self, delay: float) -> bool:
        """Book ``delay`` s of pause for this mailbox; False if that would exceed max_wait.

        Pauses of parallel workers overlap, so only the part beyond the current pause counts.
        """
        with self.lock:
            now = time.monotonic()
            start = max(now, self.pause_until)
            until = max(self.pause_until, now + delay)
            added = until - start if until > start else 0.0
            if self.waited + added > self.max_wait:
                return False
            self.waited += added
            self.pause_until = until
            return True

    def _pause(self, _delay: float) -> None:
        """Sleep until the mailbox's pause is over (the booked delay is part of it)."""
        left = self.pause_until - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _gave_up(self, exc: _Retry) -> SourceError:
        if exc.kind == "throttled":
            return SourceError(Kind.THROTTLED, f"Microsoft Graph kept throttling mailbox "
                               f"{self.mailbox} ({self.waited:.0f} s waited, max_wait "
                               f"{self.max_wait:.0f} s; last: {exc.message})", HINT_THROTTLED,
                               retry_after=exc.retry_after or 0.0)
        return SourceError(Kind.TRANSIENT, f"Graph request for {self.mailbox} failed: "
                           f"{exc.message}", HINT_TRANSIENT)

    def _attempt(self, url: str, params: dict[str, str] | None, delta: bool, state_link: bool,
                 missing_ok: bool, tries: dict[str, int]) -> dict[str, Any] | None:
        token = self.source.tokens.access_token()  # SourceError(AUTH/TRANSIENT) passes through
        headers = {"Authorization": f"Bearer {token}", "client-request-id": str(uuid.uuid4())}
        if delta:
            headers["Prefer"] = f"odata.maxpagesize={DELTA_PAGE}"
        with self.lock:
            self.requests += 1
        try:
            # verify per request: a Session's verify loses against $REQUESTS_CA_BUNDLE.
            resp = self.session.get(url, params=params, headers=headers, timeout=TIMEOUT,
                                    verify=self.source.settings.verify)
        except requests.exceptions.SSLError as exc:
            if "certificate" in str(exc).lower():
                # Deterministic and the same for every mailbox: stop the run with one message.
                raise SourceError(Kind.AUTH, f"TLS error talking to {self.source.graph_url}: "
                                  f"{first_line(exc)}", HINT_TLS) from None
            tries["transient"] += 1
            raise _Retry("transient", f"TLS error: {first_line(exc)}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            tries["transient"] += 1
            raise _Retry("transient", f"{type(exc).__name__}: {first_line(exc)}") from None
        status = resp.status_code
        if 200 <= status < 300:
            try:
                body = resp.json()
            except ValueError:
                tries["transient"] += 1
                raise _Retry("transient", f"HTTP {status} with a body that is not JSON"
                             ) from None
            if not isinstance(body, dict):
                raise SourceError(Kind.TRANSIENT, f"Graph answered {url} with no JSON object",
                                  HINT_BUG)
            return body
        code, message = _error_of(resp)
        what = f"HTTP {status} {code}: {message}".rstrip(": ")
        wait_s = retry_after(resp)
        if status == 401:
            if tries["auth"] == 0:
                # Most likely the token expired in flight: a fresh one, once.
                tries["auth"] += 1
                self._renew(token)
                raise _Retry("auth", what)
            raise SourceError(Kind.AUTH, f"Microsoft Graph refused the token for "
                              f"{self.mailbox} ({what})", HINT_TOKEN)
        if status == 429 or (status == 503 and wait_s is not None):
            raise _Retry("throttled", what, wait_s)
        if code == "MailboxNotEnabledForRESTAPI":
            raise SourceError(Kind.MAILBOX_MISSING, f"mailbox {self.mailbox} cannot be read "
                              f"through Graph ({code})", HINT_NO_REST)
        if status == 410 or (state_link and status in (400, 404)) or "syncstate" in code.lower():
            raise SourceError(Kind.STATE_INVALID, f"the delta state of {self.mailbox} is no "
                              f"longer valid ({what})")
        if status == 404 and missing_ok:
            return None
        if status == 404:
            raise SourceError(Kind.MAILBOX_MISSING, f"mailbox {self.mailbox} not found "
                              f"({what})", HINT_MISSING)
        if status == 403:
            raise SourceError(Kind.ACCESS_DENIED, f"access to mailbox {self.mailbox} denied "
                              f"({what})", HINT_DENIED)
        if status >= 500:
            tries["transient"] += 1
            raise _Retry("transient", what, wait_s)
        raise SourceError(Kind.TRANSIENT, f"Graph rejected a request for {self.mailbox} "
                          f"({what})", HINT_BUG)

    def _renew(self, used: str) -> None:
        """Drop the provider's token if it is still the one that was refused.

        Parallel workers hit by the same expiry then fetch one new token, not one each.
        """
        tokens = self.source.tokens
        if tokens.access_token() == used:
            tokens.invalidate()


# -- mapping ---------------------------------------------------------------------------------


def to_contact(data: Mapping[str, Any], folder_id: str | None = None) -> Contact:
    """A Graph contact (with expanded extended properties) as our Contact.

    Numbers come in NUMBER_TYPES order, blanks dropped, text stripped: the same tuple an EWS
    read of the same item gives.
    """
    found: dict[str, str] = {}

    def put(kind: str, value: Any) -> None:
        text = value.strip() if isinstance(value, str) else ""
        if text and kind not in found:
            found[kind] = text

    ext: dict[str, str] = {}
    for prop in data.get("singleValueExtendedProperties") or ():
        kind = _EXT_BY_ID.get(str(prop.get("id", "")).lower()) if isinstance(prop, dict) else None
        if kind and isinstance(prop.get("value"), str) and prop["value"].strip():
            ext.setdefault(kind, prop["value"])
    for first, second, values in (("business", "business2", _strings(data.get("businessPhones"))),
                                  ("home", "home2", _strings(data.get("homePhones")))):
        if second in ext:  # the slot of the second number is known: the rest is the first
            rest = list(values)
            if ext[second].strip() in [v.strip() for v in rest]:
                rest.pop([v.strip() for v in rest].index(ext[second].strip()))
            put(first, rest[0] if rest else None)
        else:
            for kind, index in ((first, 0), (second, 1)):
                if index < len(values):
                    put(kind, values[index])
    put("mobile", data.get("mobilePhone"))
    for kind, value in ext.items():
        put(kind, value)
    numbers = tuple(PhoneNumber(t, found[t]) for t in sorted(found, key=_ORDER.__getitem__))
    emails = tuple(a for a in (_text(e.get("address")) for e in data.get("emailAddresses") or ()
                               if isinstance(e, dict)) if a)
    return Contact(
        display_name=_text(data.get("displayName")),
        given_name=_text(data.get("givenName")),
        surname=_text(data.get("surname")),
        company=_text(data.get("companyName")),
        department=_text(data.get("department")),
        job_title=_text(data.get("jobTitle")),
        emails=emails,
        numbers=numbers,
        categories=tuple(_strings(data.get("categories"))),
        source_id=canonical_id(str(data["id"])),
        change_key=data.get("changeKey") or None,
        folder=folder_id,
    )


# -- helpers ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""  # Graph sends null for unset


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _is_contact(data: Mapping[str, Any]) -> bool:
    # Lists carry no @odata.type for items of the collection's own type.
    return str(data.get("@odata.type") or CONTACT_TYPE) == CONTACT_TYPE


def _items(call: _Call, fid: str) -> str:
    """The contacts collection of a folder."""
    if fid == CONTACTS:
        return f"{call.base}/contacts"
    return f"{call.base}/contactFolders/{_seg(fid)}/contacts"


def _seg(item_id: str) -> str:
    """An id as one path segment (Graph ids are base64url with '=' padding)."""
    return quote(item_id, safe="=")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _retry_exc(rs: RetryCallState) -> _Retry:
    exc = rs.outcome.exception() if rs.outcome else None
    if not isinstance(exc, _Retry):  # tenacity only retries _Retry
        raise TypeError(f"unexpected retry outcome {exc!r}")
    return exc


def _error_of(resp: requests.Response) -> tuple[str, str]:
    """(code, first line of message) of a Graph error body; ('', '') if there is none."""
    try:
        err = resp.json().get("error") or {}
        code, message = str(err.get("code") or ""), str(err.get("message") or "")
    except (ValueError, AttributeError):
        code, message = "", resp.reason or ""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return code, line[:200]
