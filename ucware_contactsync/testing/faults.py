"""The fault knobs of the fake (``fx.faults``): throttling, outages, slow or cut answers,
failing mailboxes, expired states and tokens. Count-based knobs (:class:`_Knob`) hit every
``every``-th eligible request until ``count`` hits are used up."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .tenant import Tenant

MailboxFault = Literal["missing", "denied", "http500"]


class _Knob:
    """A count-based fault: of the eligible requests, every ``every``-th is hit until
    ``count`` hits are used up (``every=2``: every second request, "half of them")."""

    __slots__ = ("count", "every", "seen", "value")

    def __init__(self, count: int = 0, every: int = 1, value: Any = None) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.count, self.every, self.seen, self.value = count, every, 0, value

    def take(self) -> bool:
        if self.count <= 0:
            return False
        self.seen += 1
        if self.seen % self.every:
            return False
        self.count -= 1
        return True


class Faults:
    """Knobs that make the next requests fail in the ways Microsoft's services fail.

    Count-based knobs are consumed atomically, so with several client threads exactly
    ``count`` requests are hit. Most take ``every``: hit only every ``every``-th eligible
    request (a throttling storm: ``throttle_graph(count=1000, every=2)``).
    """

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant
        self._lock = threading.Lock()
        # Graph folder-delta links issued before this generation are gone (410); like sync
        # states, reset() keeps it.
        self.folder_link_epoch: Counter[str] = Counter()
        # knob name -> requests it hit so far (kept by reset(); a held-back slow response
        # counts when it starts waiting, long before it reaches the request log).
        self.hits: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Back to a healthy service (does not touch tenant data or sync states)."""
        with self._lock:
            self._ews_busy = _Knob()
            self._ews_429 = _Knob()
            self._graph_throttle = _Knob()
            self._graph_sub_throttle = _Knob()
            self._mailboxes: dict[str, MailboxFault] = {}
            self._token_down = False
            self._token_ok_left: int | None = None  # token_outage: healthy answers left
            self._token_outage_s: float | None = None
            self._token_down_until = 0.0  # time.monotonic(); inf: until reset
            self._slow = 0.0
            self._slow_next = _Knob()
            self._slow_apis: frozenset[str] = frozenset()
            self._token_lifetime: int | None = None
            self._lifetime_next = _Knob()
            self._drop = _Knob()
            self._drop_apis: frozenset[str] = frozenset({"ews", "graph"})
            self._malformed = _Knob()
            self._malformed_apis: frozenset[str] = frozenset({"ews", "graph"})
            self._entities = _Knob()
            self._item_missing = _Knob()

    # -- the public knobs -----------------------------------------------------------------------
    def throttle_ews(self, count: int = 1, backoff_ms: int = 1000, every: int = 1) -> None:
        """Next ``count`` EWS requests: HTTP 500 SOAP fault ErrorServerBusy with
        BackOffMilliseconds."""
        with self._lock:
            self._ews_busy = _Knob(count, every, backoff_ms)

    def throttle_ews_http429(self, count: int = 1, retry_after: float = 1,
                             every: int = 1) -> None:
        """Next ``count`` EWS requests: bare HTTP 429 with ``Retry-After`` (seconds)."""
        with self._lock:
            self._ews_429 = _Knob(count, every, retry_after)

    def throttle_graph(self, count: int = 1, retry_after_s: float = 1, status: int = 429,
                       every: int = 1) -> None:
        """Next ``count`` Graph requests: 429 (or e.g. 503) with ``Retry-After``.

        ``retry_after_s`` may be fractional (``0.1``): not what Graph sends, but it keeps
        throttling tests fast; clients that parse the header as a number honour it."""
        with self._lock:
            self._graph_throttle = _Knob(count, every, (status, retry_after_s))

    def throttle_graph_subrequests(self, count: int = 1, retry_after_s: float = 1,
                                   every: int = 1) -> None:
        """Next ``count`` sub-requests inside Graph ``$batch`` requests: 429 with their own
        ``Retry-After`` (the batch itself answers 200, as Graph does)."""
        with self._lock:
            self._graph_sub_throttle = _Knob(count, every, retry_after_s)

    def fail_mailbox(self, smtp: str, kind: MailboxFault) -> None:
        """Every request for this mailbox fails: missing / denied / http500."""
        if kind not in ("missing", "denied", "http500"):
            raise ValueError(f"unknown mailbox fault {kind!r}")
        with self._lock:
            self._mailboxes[smtp.lower()] = kind

    def clear(self, smtp: str | None = None) -> None:
        """Remove the mailbox fault of ``smtp`` (all mailbox faults if None)."""
        with self._lock:
            if smtp is None:
                self._mailboxes.clear()
            else:
                self._mailboxes.pop(smtp.lower(), None)

    def token_endpoint_down(self, down: bool = True) -> None:
        """Token endpoint answers HTTP 503 ``temporarily_unavailable`` (AADSTS90033)."""
        with self._lock:
            self._token_down = down
            if not down:
                self._token_ok_left, self._token_down_until = None, 0.0

    def token_outage(self, after: int = 0, seconds: float | None = None) -> None:
        """The token endpoint goes down after ``after`` more successful answers, for
        ``seconds`` (None: until ``token_endpoint_down(False)`` or ``reset()``)."""
        with self._lock:
            self._token_ok_left, self._token_outage_s = after, seconds
            self._token_down_until = 0.0

    def slow(self, seconds: float) -> None:
        """Delay every response by ``seconds`` (0 turns it off)."""
        with self._lock:
            self._slow = seconds

    def slow_responses(self, count: int, seconds: float, api: str | tuple[str, ...] | None = None,
                       every: int = 1) -> None:
        """Next ``count`` responses (EWS and Graph unless ``api`` says otherwise): delay them
        by ``seconds`` on top of ``slow`` (for client read timeouts)."""
        with self._lock:
            self._slow_next = _Knob(count, every, seconds)
            self._slow_apis = _apis(api)

    def token_lifetime(self, seconds: int | None, count: int | None = None) -> None:
        """Lifetime of tokens issued from now on (None: the default 3599 s); with ``count``,
        of the next ``count`` tokens only (then the lifetime set before applies again)."""
        with self._lock:
            if count is None:
                self._token_lifetime = seconds
            else:
                self._lifetime_next = _Knob(count, 1, seconds)

    def drop_connection(self, count: int = 1, api: str | tuple[str, ...] | None = None,
                        every: int = 1) -> None:
        """Next ``count`` responses (EWS and Graph unless ``api`` says otherwise): send the
        headers and half the body, then close the socket."""
        with self._lock:
            self._drop, self._drop_apis = _Knob(count, every), _apis(api)

    def malformed_response(self, count: int = 1, api: str | tuple[str, ...] | None = None,
                           every: int = 1) -> None:
        """Next ``count`` responses (EWS and Graph unless ``api`` says otherwise): a complete
        HTTP response (status and headers kept, Content-Length right) whose body is cut
        in half: XML / JSON that ends in the middle of a document."""
        with self._lock:
            self._malformed, self._malformed_apis = _Knob(count, every), _apis(api)

    def xml_entities(self, kind: Literal["laughs", "external"], count: int = 1,
                     operation: str | None = "SyncFolderItems",
                     system_id: str = "file:///etc/hostname") -> None:
        """Next ``count`` successful EWS answers (to ``operation``, None: any) carry a DTD and
        an entity reference at the start of every ``DisplayName``: ``laughs`` is the billion
        laughs (10**9 "lol" if expanded), ``external`` an external entity ``system_id``. A
        safe client neither expands nor fetches them."""
        if kind not in ("laughs", "external"):
            raise ValueError(f"unknown entity attack {kind!r}")
        with self._lock:
            self._entities = _Knob(count, 1, (kind, operation, system_id))

    def item_not_found(self, count: int = 1) -> None:
        """Next ``count`` Graph GETs of one contact (``/contacts/{id}``): 404 ErrorItemNotFound,
        as Exchange answers for an item it cannot find this moment (replication, a move)."""
        with self._lock:
            self._item_missing = _Knob(count)

    def take_item_missing(self) -> bool:
        with self._lock:
            return self._item_missing.take()

    def invalidate_sync_states(self, smtp: str) -> None:
        """All SyncStates / delta tokens issued so far for this mailbox become invalid."""
        self._tenant.invalidate_sync_states(smtp)

    def expire_folder_delta(self, smtp: str) -> None:
        """The Graph ``contactFolders/delta`` links issued so far for this mailbox answer 410
        (its contact delta links stay valid)."""
        with self._lock:
            self.folder_link_epoch[smtp.lower()] += 1

    # -- used by the server ---------------------------------------------------------------------
    def take_ews_busy(self) -> int | None:
        with self._lock:
            return self._ews_busy.value if self._ews_busy.take() else None

    def take_ews_429(self) -> float | None:
        with self._lock:
            return self._ews_429.value if self._ews_429.take() else None

    def take_graph_throttle(self) -> tuple[int, float] | None:
        with self._lock:
            return self._graph_throttle.value if self._graph_throttle.take() else None

    def take_graph_sub_throttle(self) -> float | None:
        with self._lock:
            return (self._graph_sub_throttle.value if self._graph_sub_throttle.take()
                    else None)

    def take_drop(self, api: str) -> bool:
        with self._lock:
            return api in self._drop_apis and self._drop.take()

    def take_malformed(self, api: str) -> bool:
        with self._lock:
            return api in self._malformed_apis and self._malformed.take()

    def take_entities(self, operation: str) -> tuple[str, str] | None:
        """(kind, system_id) if this EWS answer gets the entity attack."""
        with self._lock:
            wanted = self._entities.value[1] if self._entities.value else None
            if wanted in (None, operation) and self._entities.take():
                return self._entities.value[0], self._entities.value[2]
            return None

    def take_delay(self, api: str | None) -> float:
        """Seconds to hold this response back (``slow`` plus a ``slow_responses`` hit)."""
        with self._lock:
            extra = 0.0
            if api in self._slow_apis and self._slow_next.take():
                extra = self._slow_next.value
                self.hits["slow_responses"] += 1
            return self._slow + extra

    def take_token_down(self) -> bool:
        """Whether this token request meets an outage (consumes ``token_outage``'s count)."""
        with self._lock:
            if self._token_down:
                return True
            now = time.monotonic()
            if self._token_ok_left is not None:
                if self._token_ok_left > 0:
                    self._token_ok_left -= 1
                    return False
                self._token_ok_left = None
                self._token_down_until = (float("inf") if self._token_outage_s is None
                                          else now + self._token_outage_s)
            return now < self._token_down_until

    def mailbox_fault(self, smtp: str | None) -> MailboxFault | None:
        with self._lock:
            return self._mailboxes.get((smtp or "").lower())

    @property
    def delay(self) -> float:
        return self._slow

    @property
    def is_token_down(self) -> bool:
        return self._token_down or time.monotonic() < self._token_down_until

    @property
    def lifetime(self) -> int | None:
        return self._token_lifetime

    def take_lifetime(self) -> int | None:
        """Lifetime of the token being issued (consumes a ``count`` of token_lifetime)."""
        with self._lock:
            if self._lifetime_next.take():
                value: int | None = self._lifetime_next.value
                return value
            return self._token_lifetime


def _apis(api: str | tuple[str, ...] | None) -> frozenset[str]:
    return frozenset(("ews", "graph") if api is None else (api,) if isinstance(api, str)
                     else api)


def with_entities(payload: bytes, kind: str, system_id: str = "file:///etc/hostname") -> bytes:
    """``payload`` (a SOAP answer) with a DTD and an entity reference in every DisplayName."""
    if kind == "laughs":
        dtd = '<!ENTITY lol0 "lol">' + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
        ref = "&lol9;"
    else:
        dtd, ref = f'<!ENTITY xxe SYSTEM "{system_id}">', "&xxe;"
    head = b'<?xml version="1.0" encoding="utf-8"?>'
    payload = payload.replace(head, head + f"<!DOCTYPE s:Envelope [{dtd}]>".encode(), 1)
    return payload.replace(b"<t:DisplayName>", b"<t:DisplayName>" + ref.encode())
