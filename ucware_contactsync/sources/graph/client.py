"""One GET to Microsoft Graph and what its answer means: ``Req``, ``MailboxCall``, ``outcome``.

A ``Req`` is one GET of one mailbox; the ``Dispatcher`` (batch.py) sends it, alone or inside
a ``$batch``, and calls ``outcome`` on the answer, the same way for both: 2xx is the JSON
body, 429 and 503 with ``Retry-After`` are retried after it (exponential back-off without it)
until the mailbox's wait budget (``max_wait``) is spent, then ``Kind.THROTTLED``; dropped
connections, timeouts and other 5xx a few times, then ``Kind.TRANSIENT``. A pause ordered by
Graph holds all requests of that mailbox, not only the one that got it. A 401 drops the
provider's token and repeats the request once (the token expired in flight), a second 401 is
``Kind.AUTH``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from requests.utils import requote_uri

from ..base import HINT_MISSING, HINT_THROTTLED, Kind, SourceError

log = logging.getLogger("ucware_contactsync.sources.graph")

DELTA_PAGE = 200  # Graph's maximum for contact delta pages
MAILBOX_CONCURRENCY = 4  # Graph allows 4 concurrent requests per app and mailbox
TIMEOUT = (10.0, 60.0)  # (connect, read) seconds

HINT_NO_REST = ("the mailbox is on-premises, inactive or has no Exchange Online license: "
                "read on-premises mailboxes with api=ews (office365=false), or license it")
HINT_DENIED = ("grant the app the Microsoft Graph application permission Contacts.Read with "
               "admin consent; if RBAC for Applications scopes the app, add this mailbox to "
               "its management scope")
HINT_TOKEN = ("Graph refused the app's token: check that the app has the Microsoft Graph "
              "application permission Contacts.Read with admin consent, and graph_url")
HINT_TRANSIENT = "the next run retries; check network access to graph_url if it persists"
HINT_BUG = "unexpected answer from Microsoft Graph; report it with the -vv log if it persists"

_SEQ = itertools.count()


class Retry(Exception):
    """An attempt worth repeating. ``kind``: throttled | transient | auth."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after


class MailboxCall:
    """One read (or check) of one mailbox: request count, wait budget, pause, prefetched GETs.

    Shared by the dispatcher's sender threads, hence the lock around counters and budget.
    """

    def __init__(self, graph_url: str, mailbox: str, max_wait: float) -> None:
        self.mailbox = mailbox
        self.key = mailbox.lower()
        self.base = f"{graph_url}/v1.0/users/{quote(mailbox, safe='@')}"
        self.origin = origin(graph_url)
        self.max_wait = max_wait
        self.lock = threading.Lock()
        self.requests = 0
        self.waited = 0.0
        self.pause_until = 0.0  # time.monotonic(): Graph asked this mailbox to pause till then
        self.prefetched: dict[str, Req] = {}  # url -> a GET sent ahead of the read

    def reserve(self, delay: float) -> bool:
        """Book ``delay`` s of pause for this mailbox; False if that would exceed max_wait.

        Pauses of parallel requests overlap, so only the part beyond the current pause counts.
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

    def checked(self, url: str) -> str:
        """``url`` (a nextLink) if it is on graph_url's host: our token goes nowhere else."""
        if origin(url) != self.origin:
            raise SourceError(Kind.TRANSIENT, f"Graph sent a nextLink to another host "
                              f"({origin(url)}) for {self.mailbox}", HINT_BUG)
        return url

    def gave_up(self, exc: Retry) -> SourceError:
        if exc.kind == "throttled":
            return SourceError(Kind.THROTTLED, f"Microsoft Graph kept throttling mailbox "
                               f"{self.mailbox} ({self.waited:.0f} s waited, max_wait "
                               f"{self.max_wait:.0f} s; last: {exc.message})", HINT_THROTTLED,
                               retry_after=exc.retry_after or 0.0)
        return SourceError(Kind.TRANSIENT, f"Graph request for {self.mailbox} failed: "
                           f"{exc.message}", HINT_TRANSIENT)


@dataclass(eq=False)
class Req:
    """One GET of one mailbox, its retry counters and, once answered, its future's result.

    ``state_link``: the URL is a stored delta link (a 400/404 means the link is unusable);
    ``missing_ok``: a 404 gives None (an item deleted since the delta page named it).
    """

    call: MailboxCall
    url: str  # absolute, query included
    delta: bool = False
    state_link: bool = False
    missing_ok: bool = False
    future: Future[Any] = field(default_factory=Future)
    urgent: bool = True  # a read waits for it (else: sent ahead, may wait for a full batch)
    not_before: float = 0.0
    queued: float = 0.0
    seq: int = field(default_factory=lambda: next(_SEQ))
    transient: int = 0
    throttled: int = 0
    auth: int = 0
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Prefer": f"odata.maxpagesize={DELTA_PAGE}"} if self.delta else {}


def prepared(url: str, params: dict[str, str] | None) -> str:
    """``url`` with ``params`` encoded as requests encodes them (one spelling for both paths):
    its ``prepare()`` gives the same (tested), but building a whole request for it cost a
    fifth of a full read's CPU in the reader threads."""
    if not params:
        return url
    parts = urlsplit(url)
    base = requote_uri(urlunsplit(parts._replace(scheme=parts.scheme.lower(),
                                                 netloc=parts.netloc.lower())))
    # urlencode leaves only characters requote_uri keeps as they are.
    return f"{base}{'&' if parts.query else '?'}{urlencode(params, doseq=True)}"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def outcome(req: Req, status: int, headers: Any, body: Any, wait_s: float | None,
            renew: Any) -> dict[str, Any] | None:
    """The answer to ``req`` (JSON object, or None for a missing item with ``missing_ok``).

    Raises ``Retry`` for what is worth repeating and ``SourceError`` for the rest.
    ``renew(token)`` drops the provider's token after a 401.
    """
    call = req.call
    if 200 <= status < 300:
        if not isinstance(body, dict):
            if body is None or isinstance(body, (bytes, str)):
                req.transient += 1
                raise Retry("transient", f"HTTP {status} with a body that is not JSON")
            raise SourceError(Kind.TRANSIENT, f"Graph answered {req.url} with no JSON object",
                              HINT_BUG)
        return body
    code, message = error_of(body)
    what = f"HTTP {status} {code}: {message}".rstrip(": ")
    if status == 401:
        if req.auth == 0:
            # Most likely the token expired in flight: a fresh one, once.
            req.auth += 1
            renew(req.token)
            raise Retry("auth", what)
        raise SourceError(Kind.AUTH, f"Microsoft Graph refused the token for "
                          f"{call.mailbox} ({what})", HINT_TOKEN)
    if status == 429 or (status == 503 and wait_s is not None):
        req.throttled += 1
        raise Retry("throttled", what, wait_s)
    if code == "MailboxNotEnabledForRESTAPI":
        raise SourceError(Kind.MAILBOX_MISSING, f"mailbox {call.mailbox} cannot be read "
                          f"through Graph ({code})", HINT_NO_REST)
    if (status == 410 or (req.state_link and status in (400, 404))
            or "syncstate" in code.lower()):
        raise SourceError(Kind.STATE_INVALID, f"the delta state of {call.mailbox} is no "
                          f"longer valid ({what})")
    if status == 404 and req.missing_ok:
        return None
    if status == 404:
        raise SourceError(Kind.MAILBOX_MISSING, f"mailbox {call.mailbox} not found "
                          f"({what})", HINT_MISSING)
    if status == 403:
        raise SourceError(Kind.ACCESS_DENIED, f"access to mailbox {call.mailbox} denied "
                          f"({what})", HINT_DENIED)
    if status >= 500:
        req.transient += 1
        raise Retry("transient", what, wait_s)
    raise SourceError(Kind.TRANSIENT, f"Graph rejected a request for {call.mailbox} "
                      f"({what})", HINT_BUG)


def error_of(body: Any) -> tuple[str, str]:
    """(code, first line of message) of a Graph error body; ('', '') if there is none."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "", ""
    code, message = str(err.get("code") or ""), str(err.get("message") or "")
    line = message.strip().splitlines()[0] if message.strip() else ""
    return code, line[:200]


def delay_for(exc: Retry, req: Req, backoff: float) -> float:
    """Seconds to wait before repeating ``req`` after ``exc``."""
    if exc.kind == "auth":
        return 0.0
    if exc.retry_after is not None:
        return max(0.0, exc.retry_after)
    if exc.kind == "throttled":
        return float(min(60, 2 ** (req.throttled - 1)))
    return float(min(8.0, backoff * 2 ** (req.transient - 1)))
