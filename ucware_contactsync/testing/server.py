"""FakeExchange: token endpoint, EWS and Graph over real HTTPS on 127.0.0.1.

One ``ThreadingHTTPServer`` on a random free port serves all three APIs (as login, Graph and
Outlook would on different hosts); the client is pointed at it with ``login_url``,
``graph_url``, ``ews_url`` and trusts ``ca_file``. TLS handshakes run in the worker threads
(not in ``accept()``), HTTP/1.1 keep-alive is on, and ``stop()`` closes open client
connections so a stopped server is really gone.

Fault knobs live in :class:`Faults` (``fx.faults``, faults.py), every request is recorded in
``fx.requests`` (see :class:`RequestRecord`, httpd.py with the server itself).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import ssl
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from ..contact import compact_json
from . import graph_directory
from .certs import make_certificates
from .ews import Ews, EwsRequestError, parse_request, soap_fault
from .faults import Faults, with_entities
from .graph import Graph, GraphError, error_body
from .graph_batch import MAILBOX_CONCURRENCY, GraphCall, handle_batch
from .httpd import Api, Handler, RequestRecord, Server
from .ntlm import NtlmAcceptor, Refusal, ServiceAccount
from .tenant import Mailbox, Tenant
from .token import InvalidToken, TokenReply, entra_error, handle_token_request, verify_token

# Faults, RequestRecord and with_entities live in faults.py / httpd.py; server.X still works.
__all__ = ["FakeExchange", "Faults", "RequestRecord", "with_entities", "Api", "EWS_ROLE",
           "GRAPH_ROLES"]

EWS_ROLE = "full_access_as_app"
GRAPH_ROLES = frozenset({"Contacts.Read", "Contacts.ReadWrite"})
DEFAULT_TOKEN_LIFETIME = 3599


def _seconds(value: float) -> str:
    """A Retry-After value: whole seconds as Microsoft sends them, else e.g. ``0.1``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


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
        self._server: Server | None = None
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
        self._server = Server((self.host, self.port), self, ctx)
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
    def _route(self, h: Handler, rec: RequestRecord, path: str, query: str, body: bytes
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
    def _token(self, h: Handler, tenant_in_path: str, body: bytes
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
    def _ews_request(self, h: Handler, rec: RequestRecord, body: bytes
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
        payload = reply.body if isinstance(reply.body, bytes) else compact_json(
            reply.body).encode("utf-8")
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
