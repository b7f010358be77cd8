"""FakeExchange: token endpoint, EWS and Graph over real HTTPS on 127.0.0.1.

One ``ThreadingHTTPServer`` on a random free port serves all three APIs (as login, Graph and
Outlook would on different hosts); the client is pointed at it with ``login_url``,
``graph_url``, ``ews_url`` and trusts ``ca_file``. TLS handshakes run in the worker threads
(not in ``accept()``), HTTP/1.1 keep-alive is on, and ``stop()`` closes open client
connections so a stopped server is really gone.

Fault knobs live in :class:`Faults` (``fx.faults``), every request is recorded in
``fx.requests`` (see :class:`RequestRecord`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from . import graph_directory
from .certs import make_certificates
from .ews import Ews, EwsRequestError, parse_request, soap_fault
from .graph import Graph, GraphError, error_body
from .graph_batch import MAILBOX_CONCURRENCY, GraphCall, handle_batch
from .ntlm import NtlmAcceptor, Refusal, ServiceAccount
from .tenant import Mailbox, Tenant
from .token import InvalidToken, TokenReply, entra_error, handle_token_request, verify_token

Api = Literal["token", "ews", "graph"]
MailboxFault = Literal["missing", "denied", "http500"]

EWS_ROLE = "full_access_as_app"
GRAPH_ROLES = frozenset({"Contacts.Read", "Contacts.ReadWrite"})
DEFAULT_TOKEN_LIFETIME = 3599


@dataclass(slots=True)
class RequestRecord:
    """One request as the server saw it (filled in when the response is sent)."""

    method: str
    path: str  # without query string
    query: str
    api: Api | None  # None: no route matched
    operation: str | None = None  # SOAP op ("SyncFolderItems") or Graph kind ("delta", ...)
    mailbox: str | None = None  # lower-case primary SMTP address
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # request body (EWS XML; token form with the secret masked)
    fault: str | None = None  # name of the fault knob that shaped the answer
    response_bytes: int = 0  # length of the body sent (before a drop cut it)
    started: float = 0.0
    duration: float = 0.0
    connection: int = 0  # which client connection carried it (NTLM is per connection)
    batch: str | None = None  # Graph: request-id of the $batch this sub-request came in
    request_id: str = ""  # Graph $batch: its request-id (what its sub-requests' batch holds)

    @property
    def round_trip(self) -> bool:
        """An HTTP request of its own (not a sub-request inside a ``$batch``)."""
        return self.batch is None

    @property
    def url(self) -> str:
        return self.path + ("?" + self.query if self.query else "")


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


def _seconds(value: float) -> str:
    """A Retry-After value: whole seconds as Microsoft sends them, else e.g. ``0.1``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], fx: FakeExchange, ctx: ssl.SSLContext) -> None:
        self.fx = fx
        self.ctx = ctx
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
        # would add ~40 ms to every response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Handshake later, in the worker thread: a slow client must not block accept().
        tls = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.sockets_lock:
            self.open_sockets.add(tls)
        return tls, addr

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (drop_connection, stop()) are normal here; keep test output clean.
        pass

    def close_all(self) -> None:
        with self.sockets_lock:
            socks = list(self.open_sockets)
            self.open_sockets.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exchangelib and requests pool connections
    server: _Server
    timeout = 60  # idle keep-alive connections end after a minute
    # NTLM is per connection (one handler serves one connection): see ntlm.py
    ntlm_context: Any = None
    ntlm_account: ServiceAccount | None = None

    def version_string(self) -> str:
        return "Microsoft-IIS/10.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        fx = self.server.fx
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rec = RequestRecord(self.command, split.path, split.query, None,
                            headers=dict(self.headers.items()), started=time.monotonic(),
                            connection=id(self))
        self.held: list[str] = []  # Graph mailboxes this request occupies while it is served
        try:
            self._answer(fx, rec, split.path, split.query, body)
        finally:
            fx._release(self.held)  # a no-op unless _answer failed before releasing

    def _answer(self, fx: FakeExchange, rec: RequestRecord, path: str, query: str,
                body: bytes) -> None:
        try:
            status, headers, payload = fx._route(self, rec, path, query, body)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must not hang the client
            status, headers = 500, {"Content-Type": "text/plain"}
            payload = f"fake exchange internal error: {exc!r}".encode()
        # The mailbox's work is done; a slow network (the delay below) holds no slot, or a
        # client that gave up waiting would find its mailbox still busy.
        fx._release(self.held)
        delay = fx.faults.take_delay(rec.api)
        if delay:
            time.sleep(delay)
        rec.status = status
        if rec.api in ("ews", "graph") and fx.faults.take_malformed(rec.api):
            rec.fault = "malformed_response"
            payload = payload[: len(payload) // 2]
        drop = rec.api is not None and fx.faults.take_drop(rec.api)
        if drop:
            rec.fault = "drop_connection"
        rec.response_bytes = len(payload)
        rec.duration = time.monotonic() - rec.started
        fx._log(rec)
        self.send_response(status)
        for k, v in headers.items():
            for one in v if isinstance(v, list) else (v,):  # a list: one header line each
                self.send_header(k, one)
        self.send_header("Content-Length", str(len(payload)))
        # One write for headers and body: one TLS record burst instead of two.
        buffered: list[bytes] = getattr(self, "_headers_buffer", [])
        head = b"".join(buffered) + b"\r\n"  # what end_headers() would add and flush
        buffered.clear()
        if drop:
            # Half the body, then hang up: the client sees an incomplete read.
            self.wfile.write(head + payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(head + payload if self.command != "HEAD" else head)


def _now_http() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


class FakeExchange:
    """Fake Exchange Online (Entra token endpoint + EWS + Graph) for ``tenant``."""

    def __init__(self, tenant: Tenant, port: int = 0, host: str = "127.0.0.1",
                 cert_dir: str | Path | None = None, on_premises: bool = False,
                 extended_protection: bool = True) -> None:
        self.tenant = tenant
        self.host = host
        self.port = port
        self.faults = Faults(tenant)
        self.requests: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._ews = Ews(tenant)
        self._graph = Graph(tenant)
        self._graph.link_epoch = self.faults.folder_link_epoch
        self._inflight: Counter[str] = Counter()  # Graph requests per mailbox being answered
        self._inflight_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._own_dir = cert_dir is None
        self._cert_dir = Path(cert_dir) if cert_dir else None
        # On-premises Exchange: EWS behind Windows authentication (NTLM) with one service
        # account, instead of Entra tokens (see ntlm.py); Graph and the token endpoint stay.
        self.ntlm: NtlmAcceptor | None = None
        self.service_account: ServiceAccount | None = None
        self._extended_protection = extended_protection
        if on_premises:
            self.ntlm = NtlmAcceptor()
            pw = base64.b64encode(tenant.rng.randbytes(15)).decode()
            self.service_account = self.ntlm.add_account(
                "svc-ucware", f"Sv:{pw}", domain=tenant.domain.split(".")[0].upper(),
                upn=f"svc-ucware@{tenant.domain}")

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeExchange:
        if self._server is not None:
            return self
        if self._cert_dir is None:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="fake-exchange-"))
        certs = make_certificates(self._cert_dir)
        self.ca_file = str(certs.ca_file)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(certs.cert_file), str(certs.key_file))
        if self.ntlm is not None and self._extended_protection:
            self.ntlm.use_certificate(certs.cert_file)
        self._server = _Server((self.host, self.port), self, ctx)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"fake-exchange-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_dir and self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- where to point the client --------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def login_url(self) -> str:
        return self.base_url

    @property
    def graph_url(self) -> str:
        return self.base_url

    @property
    def ews_url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    def token_url(self, tenant_id: str | None = None) -> str:
        return f"{self.login_url}/{tenant_id or self.tenant.tenant_id}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        """The OAuth scope for both APIs here: origin + ``/.default``."""
        return f"{self.base_url}/.default"

    def settings(self) -> dict[str, str]:
        """The configuration keys that point the module at this fake (the tenant's first app;
        on premises: the service account, by its ``DOMAIN\\user`` name)."""
        if self.service_account is not None:
            return {"office365": "false", "ews_url": self.ews_url, "ca_bundle": self.ca_file,
                    "ews_username": self.service_account.name,
                    "ews_password": self.service_account.password}
        app = next(iter(self.tenant.apps.values()))
        return {"tenant_id": self.tenant.tenant_id, "client_id": app.client_id,
                "client_secret": app.secret, "login_url": self.login_url,
                "graph_url": self.graph_url, "ews_url": self.ews_url, "ca_bundle": self.ca_file}

    # -- request log ----------------------------------------------------------------------------
    def _log(self, rec: RequestRecord) -> None:
        with self._log_lock:
            self.requests.append(rec)

    def clear_requests(self) -> None:
        with self._log_lock:
            self.requests.clear()

    def requests_for(self, api: Api | None = None, operation: str | None = None,
                     mailbox: str | None = None) -> list[RequestRecord]:
        """Filtered copy of the log."""
        with self._log_lock:
            recs = list(self.requests)
        return [r for r in recs if (api is None or r.api == api)
                and (operation is None or r.operation == operation)
                and (mailbox is None or r.mailbox == mailbox.lower())]

    # -- Graph's MailboxConcurrency: 4 requests per app and mailbox at once ---------------------
    def _acquire(self, mailbox: str, held: list[str]) -> bool:
        """Occupy one of the mailbox's 4 slots for the request that ``held`` belongs to."""
        with self._inflight_lock:
            if self._inflight[mailbox] >= MAILBOX_CONCURRENCY:
                return False
            self._inflight[mailbox] += 1
        held.append(mailbox)
        return True

    def _release(self, held: list[str]) -> None:
        with self._inflight_lock:
            for mailbox in held:
                self._inflight[mailbox] -= 1
                if self._inflight[mailbox] <= 0:
                    del self._inflight[mailbox]
        held.clear()

    # -- routing ---------------------------------------------------------------------------------
    def _route(self, h: _Handler, rec: RequestRecord, path: str, query: str, body: bytes
               ) -> tuple[int, dict[str, Any], bytes]:
        parts = path.split("/")
        if (h.command == "POST" and len(parts) == 5 and parts[2:] == ["oauth2", "v2.0", "token"]):
            rec.api, rec.operation = "token", "token"
            rec.body = _mask_secret(body)
            return self._token(h, unquote(parts[1]), body)
        if path.lower() == "/ews/exchange.asmx":
            rec.api = "ews"
            rec.body = body.decode("utf-8", "replace")
            if h.command != "POST":
                return 405, {"Allow": "POST"}, b""
            return self._ews_request(h, rec, body)
        if path.startswith("/v1.0/"):
            rec.api = "graph"
            if path == "/v1.0/$batch":
                return handle_batch(self, h, rec, body)
            return self._graph_request(GraphCall(h.command, h.headers, h.held), rec, path,
                                       query)
        return 404, {"Content-Type": "text/plain"}, b"Not Found"

    # token -------------------------------------------------------------------------------------
    def _token(self, h: _Handler, tenant_in_path: str, body: bytes
               ) -> tuple[int, dict[str, str], bytes]:
        if self.faults.take_token_down():
            reply = entra_error(503, "temporarily_unavailable", 90033,
                                "A transient error has occurred. Please try again.")
            reply.headers["Retry-After"] = "1"
        else:
            lifetime = self.faults.take_lifetime()
            if lifetime is None:
                lifetime = DEFAULT_TOKEN_LIFETIME
            reply = handle_token_request(self.tenant, tenant_in_path, body,
                                         h.headers.get("Authorization"), lifetime)
        return _json_reply(reply)

    # auth -----------------------------------------------------------------------------------------
    def _bearer(self, headers: Any) -> dict[str, Any] | InvalidToken:
        auth = headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return InvalidToken("Access token is empty.")
        try:
            claims = verify_token(self.tenant.signing_key, auth[7:].strip())
        except InvalidToken as exc:
            return exc
        if claims.get("tid") != self.tenant.tenant_id:
            return InvalidToken("Invalid tenant.")
        aud = urlsplit(str(claims.get("aud", "")))
        if aud.scheme != "https" or aud.port != self.port or aud.hostname not in (
                "127.0.0.1", "localhost", self.host):
            return InvalidToken(f"Invalid audience '{claims.get('aud')}'.")
        return claims

    # EWS ------------------------------------------------------------------------------------------
    def _ews_request(self, h: _Handler, rec: RequestRecord, body: bytes
                     ) -> tuple[int, dict[str, Any], bytes]:
        xml = {"Content-Type": "text/xml; charset=utf-8"}
        account = None
        if self.ntlm is not None:  # IIS authenticates before EWS reads the body
            auth = self.ntlm.authenticate(h, h.headers.get("Authorization"))
            if isinstance(auth, Refusal):  # a handshake leg: normal, so no fault
                return auth.status, auth.headers, auth.body
            account = auth
        try:
            req = parse_request(body)
        except EwsRequestError as exc:
            return 500, xml, soap_fault("ErrorSchemaValidation", str(exc))
        rec.operation = req.operation
        rec.mailbox = req.impersonated.lower() if req.impersonated else None
        claims = self._bearer(h.headers) if account is None else {"roles": (EWS_ROLE,)}
        if isinstance(claims, InvalidToken) or EWS_ROLE not in claims.get("roles", ()):
            # Exchange Online answers 401 with an empty body; exchangelib -> UnauthorizedError.
            reason = (claims.reason if isinstance(claims, InvalidToken)
                      else "The token has no full_access_as_app role.")
            return 401, {
                "WWW-Authenticate": ('Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
                                     'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
                                     'token_types="app_asserted_user_v1 service_asserted_app_v1",'
                                     ' error="invalid_token"'),
                "x-ms-diagnostics": f'2000008;reason="{reason}";error_category="invalid_token"',
            }, b""
        backoff = self.faults.take_ews_busy()
        if backoff is not None:
            rec.fault = "throttle_ews"
            return 500, xml, soap_fault("ErrorServerBusy", back_off_ms=backoff)
        retry_after = self.faults.take_ews_429()
        if retry_after is not None:
            rec.fault = "throttle_ews_http429"
            return 429, {"Retry-After": _seconds(retry_after), "Content-Type": "text/plain"}, \
                b"Too Many Requests"
        if not req.has_impersonation or not req.impersonated:
            return 500, xml, soap_fault("ErrorInvalidExchangeImpersonationHeaderData")
        fault = self.faults.mailbox_fault(req.impersonated)
        if fault is not None:
            rec.fault = "fail_mailbox"
        mbx = self.tenant.find_mailbox(req.impersonated)
        if fault == "http500":
            return 500, {"Content-Type": "text/html"}, (
                b"<html><head><title>500 - Internal server error.</title></head><body>"
                b"<h2>500 - Internal server error.</h2></body></html>")
        if fault == "missing" or mbx is None:
            # A SOAP fault, as Exchange Online sends it; exchangelib raises ErrorNonExistentMailbox.
            return 500, xml, soap_fault("ErrorNonExistentMailbox")
        if fault == "denied" or mbx.impersonation_denied or (
                account is not None and not account.may_impersonate(mbx.smtp)):
            return 500, xml, soap_fault("ErrorImpersonateUserDenied")
        status, payload = self._ews.handle(req, mbx)
        attack = self.faults.take_entities(req.operation) if status == 200 else None
        if attack is not None:
            rec.fault = "xml_entities"
            payload = with_entities(payload, *attack)
        return status, xml, payload

    # Graph ----------------------------------------------------------------------------------------
    def _graph_request(self, h: GraphCall, rec: RequestRecord, path: str, query: str,
                       sub: bool = False) -> tuple[int, dict[str, str], bytes]:
        """One Graph GET; ``sub``: a sub-request of a ``$batch`` (throttled by its own knob)."""
        request_id = str(uuid.uuid4())
        client_request_id = h.headers.get("client-request-id") or request_id
        base_headers = {"Content-Type": "application/json; odata.metadata=minimal; "
                                        "odata.streaming=true; IEEE754Compatible=false; "
                                        "charset=utf-8",
                        "request-id": request_id, "client-request-id": client_request_id}

        def err(status: int, code: str, message: str, extra: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
            return status, {**base_headers, **(extra or {})}, error_body(
                code, message, request_id, client_request_id, _now_http())

        segs = path.split("/")
        # /v1.0/users/{upn}/...
        upn = unquote(segs[3]) if len(segs) > 3 and segs[2] == "users" else None
        rec.mailbox = upn.lower() if upn else None
        rest = "/".join(segs[4:])
        rec.operation = _graph_operation(rest)
        if h.command != "GET":
            return err(405, "ErrorInvalidRequest", "The fake Graph is read-only.")
        claims = self._bearer(h.headers)
        if isinstance(claims, InvalidToken):
            message = ("Access token is empty." if claims.reason == "Access token is empty."
                       else claims.reason)
            return err(401, "InvalidAuthenticationToken", message, {
                "WWW-Authenticate": ('Bearer realm="", authorization_uri="https://login.'
                                     'microsoftonline.com/common/oauth2/authorize", client_id='
                                     '"00000003-0000-0000-c000-000000000000", '
                                     'error="invalid_token"')})
        throttled = (None if sub else self.faults.take_graph_throttle())
        sub_wait = self.faults.take_graph_sub_throttle() if sub else None
        if sub_wait is not None:
            rec.fault = "throttle_graph_subrequests"
            return err(429, "ApplicationThrottled",
                       "Application is over its MailboxConcurrency limit.",
                       {"Retry-After": _seconds(sub_wait)})
        if throttled is not None:
            status, retry_after = throttled
            rec.fault = "throttle_graph"
            if status == 429:
                return err(429, "ApplicationThrottled",
                           "Application is over its MailboxConcurrency limit.",
                           {"Retry-After": _seconds(retry_after)})
            return err(status, "ServiceUnavailable", "Service unavailable.",
                       {"Retry-After": _seconds(retry_after)})
        if graph_directory.serves(segs[2:]):
            rec.mailbox = None
            try:
                reply = graph_directory.handle(
                    self.tenant, segs[2:], query, set(claims.get("roles", ())),
                    f"https://{h.headers.get('Host') or f'{self.host}:{self.port}'}", path)
            except GraphError as exc:
                return err(exc.status, exc.code, exc.message, exc.headers)
            rec.operation = reply.operation
            return reply.status, base_headers, json.dumps(reply.body).encode("utf-8")
        if not GRAPH_ROLES & set(claims.get("roles", ())):
            return err(403, "ErrorAccessDenied", "Access is denied. Check credentials and try "
                                                 "again.")
        if upn is None or not rest:
            return err(400, "BadRequest", "The fake Graph serves /v1.0/users/{upn}/contacts… "
                                          "only.")
        fault = self.faults.mailbox_fault(upn)
        if fault is not None:
            rec.fault = "fail_mailbox"
        mbx: Mailbox | None = self.tenant.find_mailbox(upn)
        if fault == "http500":
            return err(500, "UnknownError", "")
        if fault == "missing" or mbx is None:
            return err(404, "ResourceNotFound", f"The requested user '{upn}' is invalid.")
        if fault == "denied" or mbx.impersonation_denied:
            return err(403, "ErrorAccessDenied", "Access is denied. Check credentials and try "
                                                 "again.")
        if not mbx.rest_enabled:
            return err(404, "MailboxNotEnabledForRESTAPI",
                       "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
        if not self._acquire(mbx.key, h.held):
            rec.fault = "mailbox_concurrency"
            return err(429, "ApplicationThrottled",
                       "Application is over its MailboxConcurrency limit.", {"Retry-After": "1"})
        host = h.headers.get("Host") or f"{self.host}:{self.port}"
        try:
            reply = self._graph.handle(rest, path, query, h.headers.get("Prefer"),
                                       f"https://{host}", mbx)
        except GraphError as exc:
            return err(exc.status, exc.code, exc.message, exc.headers)
        rec.operation = reply.operation or rec.operation
        if reply.operation == "contact" and self.faults.take_item_missing():
            rec.fault = "item_not_found"
            return err(404, "ErrorItemNotFound", "The specified object was not found in the "
                                                 "store.")
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(
            reply.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return reply.status, {**base_headers, **reply.headers}, payload


def _graph_operation(rest: str) -> str:
    segs = [s for s in rest.split("/") if s]
    if not segs:
        return "user"
    if segs == ["contactFolders", "delta"]:
        return "folderDelta"
    if segs[-1] == "delta":
        return "delta"
    if segs[-1] in ("contacts", "contactFolders", "childFolders"):
        return segs[-1]
    if len(segs) >= 2 and segs[-2] == "contacts":
        return "contact"
    if segs[0] == "contactFolders" and len(segs) == 2:
        return "contactFolder"
    return segs[-1]


def _json_reply(reply: TokenReply) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
               "Pragma": "no-cache", **reply.headers}
    return reply.status, headers, json.dumps(reply.body).encode("utf-8")


def _mask_secret(body: bytes) -> str:
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if "client_secret" in form:
        form["client_secret"] = ["***"]
    return urlencode({k: v[0] for k, v in form.items()})
