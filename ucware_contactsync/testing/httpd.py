"""The fake's HTTPS server: one threaded server, TLS handshakes in the worker threads,
keep-alive, a record of every request, and the fault knobs that act on the wire (delays,
cut or dropped answers). What to answer is :class:`FakeExchange`'s ``_route``."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from .ntlm import ServiceAccount

if TYPE_CHECKING:
    from .server import FakeExchange

Api = Literal["token", "ews", "graph"]


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


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], fx: FakeExchange, ctx: ssl.SSLContext) -> None:
        self.fx = fx
        self.ctx = ctx
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, Handler)

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exchangelib and requests pool connections
    server: Server
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
