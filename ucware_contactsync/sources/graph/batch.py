"""The dispatcher: every GET of the Graph source goes through it, most inside ``$batch``.

Sender threads (``max_workers`` of them, so that many HTTP requests are in flight at most)
take waiting requests of any mailboxes, up to 20 (Graph's batch limit) and never more than 4
of one mailbox in flight at once (Outlook's MailboxConcurrency, counted across batches), and
send them as one ``POST /$batch``; a lone request goes out as a plain GET. Each sub-response
has its own status: a 429 with ``Retry-After`` delays that request (and, as Graph asks, the
rest of its mailbox) only; the others of the batch are done.

Requests a read waits for (urgent) leave at once; requests sent ahead of their read
(``GraphSource.prefetch``) wait up to ``LINGER`` seconds for company, so the nightly deltas
of many mailboxes share batches.
"""

from __future__ import annotations

import http.cookiejar
import threading
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson
import requests

from ... import __version__
from ..base import HINT_TLS, Kind, SourceError, first_line, retry_after
from ..origin import OriginAdapter, mount
from . import client
from .client import MAILBOX_CONCURRENCY, Req, Retry, delay_for, log, outcome

if TYPE_CHECKING:
    from .source import GraphSource

MAX_BATCH = 20  # Graph's limit of requests per $batch
LINGER = 0.05  # s a request sent ahead waits for others to fill its batch
IDLE_EXIT = 2.0  # s an idle sender thread lives on


class Dispatcher:
    def __init__(self, source: GraphSource, senders: int) -> None:
        self.source = source
        self.senders = max(1, senders)
        self.cond = threading.Condition()
        self.queue: list[Req] = []
        self.inflight: Counter[str] = Counter()  # mailbox -> requests being answered
        self.alive = 0
        self.closed = False
        self.round_trips = 0
        self.prefix = f"{source.graph_url}/v1.0"

    # -- used by the source -------------------------------------------------------------------

    def submit(self, reqs: list[Req], urgent: bool = True) -> None:
        now = time.monotonic()
        with self.cond:
            for r in reqs:
                r.urgent, r.queued = urgent, now
                self.queue.append(r)
            while self.alive < min(self.senders, len(self.queue)):
                self.alive += 1
                threading.Thread(target=self._run, name="graph-send", daemon=True).start()
            self.cond.notify()  # one sender; it wakes the next if work is left (_take)

    def hurry(self, reqs: list[Req]) -> None:
        """A read now waits for these (sent ahead): no more lingering."""
        with self.cond:
            for r in reqs:
                r.urgent = True
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            left, self.queue = self.queue, []
            self.cond.notify_all()
        for r in left:
            if not r.future.done():
                r.future.set_exception(SourceError(Kind.TRANSIENT, "the Graph source was closed"))

    # -- sender threads -----------------------------------------------------------------------

    def _run(self) -> None:
        session = self.source._open_session()
        try:
            while True:
                chosen = self._take()
                if not chosen:
                    return
                again: list[Req] = []
                try:
                    self._send(session, chosen, again)
                except Exception as exc:  # noqa: BLE001 - never leave a read waiting forever
                    for r in chosen:
                        if not r.future.done():
                            r.future.set_exception(exc)
                finally:
                    with self.cond:
                        for r in chosen:
                            self.inflight[r.call.key] -= 1
                            if self.inflight[r.call.key] <= 0:
                                del self.inflight[r.call.key]
                        # Repeated requests go back together, so they can share a batch again.
                        for r in again:
                            if self.closed:
                                r.future.set_exception(SourceError(
                                    Kind.TRANSIENT, "the Graph source was closed"))
                            else:
                                self.queue.append(r)
                        if self.queue:  # a mailbox's slot is free again
                            self.cond.notify()
        finally:
            self.source._close_session(session)

    def _take(self) -> list[Req]:
        """Wait for the next batch to send; [] when the thread should end."""
        idle_since = time.monotonic()
        with self.cond:
            while not self.closed:
                now = time.monotonic()
                chosen, wake = self._compose(now)
                if chosen:
                    for r in chosen:
                        self.queue.remove(r)
                        self.inflight[r.call.key] += 1
                    if self.queue:
                        # Wake one more sender, not all: every woken thread competes for
                        # the interpreter with the phonebook writer.
                        self.cond.notify()
                    return chosen
                if not self.queue and now - idle_since > IDLE_EXIT:
                    break
                self.cond.wait(timeout=min(wake, IDLE_EXIT) if wake else IDLE_EXIT)
            self.alive -= 1
            return []

    def _compose(self, now: float) -> tuple[list[Req], float]:
        """(requests to send now, or []; seconds until something may change)."""
        ready: list[Req] = []
        wake = 0.0
        for r in self.queue:
            later = max(r.not_before, r.call.pause_until) - now
            if later <= 0:
                ready.append(r)
            elif not wake or later < wake:
                wake = later
        ready.sort(key=lambda r: (not r.urgent, r.seq))
        chosen: list[Req] = []
        taken: Counter[str] = Counter()
        for r in ready:
            if self.inflight[r.call.key] + taken[r.call.key] >= MAILBOX_CONCURRENCY:
                continue
            chosen.append(r)
            taken[r.call.key] += 1
            if len(chosen) == MAX_BATCH:
                break
        if not chosen:
            return [], wake
        oldest = min(r.queued for r in chosen)
        if len(chosen) == MAX_BATCH or chosen[0].urgent or now - oldest >= LINGER:
            return chosen, wake
        linger = LINGER - (now - oldest)
        return [], min(wake, linger) if wake else linger

    # -- one round trip -------------------------------------------------------------------------

    def _send(self, session: requests.Session, reqs: list[Req], again: list[Req]) -> None:
        src = self.source
        try:
            token = src.tokens.access_token()
        except SourceError as exc:
            for r in reqs:
                r.future.set_exception(exc)
            return
        for r in reqs:
            r.token = token
            with r.call.lock:
                r.call.requests += 1
        headers = {"Authorization": f"Bearer {token}", "client-request-id": str(uuid.uuid4())}
        single = len(reqs) == 1 or not all(r.url.startswith(self.prefix + "/") for r in reqs)
        self.round_trips += len(reqs) if single else 1
        try:
            if single and len(reqs) > 1:  # a link we cannot batch: one by one
                for r in reqs:
                    self._send_one(session, r, headers, again)
                return
            if single:
                self._send_one(session, reqs[0], headers, again)
                return
            body = {"requests": [{"id": str(i), "method": "GET",
                                  "url": r.url[len(self.prefix):], "headers": r.headers}
                                 for i, r in enumerate(reqs)]}
            resp = session.post(f"{self.prefix}/$batch", json=body, timeout=client.TIMEOUT,
                                headers={**headers, "Content-Type": "application/json"},
                                verify=src.settings.verify)
        except requests.exceptions.RequestException as exc:
            self._transport_failed(reqs, exc, again)
            return
        data = _json(resp)
        if resp.status_code != 200 or not isinstance(data, dict):
            # The batch as a whole failed (401, 429, 5xx…): each request gets that answer.
            for r in reqs:
                self._settle(r, resp.status_code, data, retry_after(resp), again)
            return
        by_id = {str(x.get("id")): x for x in data.get("responses") or () if isinstance(x, dict)}
        for i, r in enumerate(reqs):
            sub = by_id.get(str(i))
            if sub is None:
                self._settle(r, 502, None, None, again)  # Graph left it out: try again
                continue
            sub_headers = {str(k).lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
            self._settle(r, int(sub.get("status") or 0), sub.get("body"),
                         _seconds(sub_headers.get("retry-after")), again)

    def _send_one(self, session: requests.Session, r: Req, headers: dict[str, str],
                  again: list[Req]) -> None:
        try:
            # verify per request: a Session's verify loses against $REQUESTS_CA_BUNDLE.
            resp = session.get(r.url, headers={**headers, **r.headers}, timeout=client.TIMEOUT,
                               verify=self.source.settings.verify)
        except requests.exceptions.RequestException as exc:
            self._transport_failed([r], exc, again)
            return
        self._settle(r, resp.status_code, _json(resp), retry_after(resp), again)

    def _transport_failed(self, reqs: list[Req], exc: Exception, again: list[Req]) -> None:
        if isinstance(exc, requests.exceptions.SSLError) and "certificate" in str(exc).lower():
            # Deterministic and the same for every mailbox: stop the run with one message.
            err = SourceError(Kind.AUTH, f"TLS error talking to {self.source.graph_url}: "
                              f"{first_line(exc)}", HINT_TLS)
            for r in reqs:
                r.future.set_exception(err)
            return
        for r in reqs:
            r.transient += 1
            self._retry(r, Retry("transient", f"{type(exc).__name__}: {first_line(exc)}"), again)

    def _settle(self, r: Req, status: int, body: Any, wait_s: float | None,
                again: list[Req]) -> None:
        try:
            r.future.set_result(outcome(r, status, None, body, wait_s, self.source._renew))
        except Retry as exc:
            self._retry(r, exc, again)
        except SourceError as exc:
            r.future.set_exception(exc)

    def _retry(self, r: Req, exc: Retry, again: list[Req]) -> None:
        delay = delay_for(exc, r, self.source.backoff)
        if exc.kind == "transient" and r.transient >= self.source.transient_attempts:
            r.future.set_exception(r.call.gave_up(exc))
            return
        if not r.call.reserve(delay):
            r.future.set_exception(r.call.gave_up(exc))
            return
        log.log(20 if exc.kind == "throttled" else 10, "graph %s: %s; retrying in %.1f s",
                r.call.mailbox, exc.message, max(0.0, r.call.pause_until - time.monotonic()))
        r.not_before = r.call.pause_until
        again.append(r)


def _json(resp: requests.Response) -> Any:
    """The response's JSON, or None. orjson parses Graph's UTF-8 several times faster than
    ``resp.json()``; what it refuses (another encoding, a lone surrogate escape) goes the
    old way."""
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        pass
    try:
        return resp.json()
    except ValueError:
        return None


def _seconds(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def new_session(graph_url: str) -> requests.Session:
    s = requests.Session()
    # Graph sets no cookies we need; a jar that accepts none stays immutable.
    s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    # Only graph_url's origin: a redirect elsewhere fails the mailbox (origin.py).
    mount(s, OriginAdapter(graph_url, "graph_url", pool_connections=1, pool_maxsize=1))
    s.headers.update({"User-Agent": f"ucware-contactsync/{__version__}",
                      "Accept": "application/json"})
    return s

