"""On-premises Exchange for the fake: Windows authentication (NTLM) on the EWS endpoint.

The handshake is pyspnego's acceptor (``spnego.server``), which checks the client's answer
against the accounts of a credential file named by ``$NTLM_USER_FILE`` (smbpasswd format: the
NT hash, so any password works, colons included). How IIS in front of Exchange behaves:

* a request without ``Authorization`` gets 401 with two headers, ``WWW-Authenticate:
  Negotiate`` and ``WWW-Authenticate: NTLM``;
* the three legs run on one kept-alive connection: the challenge belongs to that connection,
  an authenticate message on another one fails; an authenticated connection stays signed in
  for its later requests (IIS' connection-based authentication);
* ``DOMAIN\\user`` and the UPN (``user@domain``) name the same account;
* a wrong password (and an unknown user) gets 401 again after the third leg; a locked account
  too, with Windows' "locked out" text in the body; ``lockout_threshold`` bad passwords lock
  the account, as an Active Directory lockout policy does;
* Extended Protection (on by default in Exchange Server SE): the client's channel binding must
  name this server's certificate.

The impersonation right (ApplicationImpersonation, or an RBAC management scope that lists the
mailboxes) is checked by the server after the logon: ``ServiceAccount.may_impersonate``.
"""

from __future__ import annotations

import atexit
import base64
import os
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import SpnegoError

from .tenant import ISSUED_SECRETS

LOCKED_OUT = b"The referenced account is currently locked out and may not be logged on to."
_CHALLENGE = ("Negotiate", "NTLM")
# $NTLM_USER_FILE is one variable per process, and changing the environment while other
# threads read it (requests looks for proxy variables on every request) can fail them. So it
# is set once, when this module is imported, to one file per process; the fakes of a process
# take turns writing their accounts into it right before pyspnego reads it.
_USER_FILE = Path(tempfile.gettempdir()) / f"fake-ntlm-{os.getpid()}-{uuid.uuid4().hex[:8]}.passwd"
os.environ["NTLM_USER_FILE"] = str(_USER_FILE)
_USER_FILE.touch(mode=0o600)  # NT hashes: owner only, before anything is written
atexit.register(_USER_FILE.unlink, missing_ok=True)
_FILE_LOCK = threading.Lock()


class Connection(Protocol):
    """What the acceptor keeps per TCP connection (the server's request handler)."""

    ntlm_context: Any
    ntlm_account: ServiceAccount | None


@dataclass(slots=True)
class ServiceAccount:
    domain: str  # NetBIOS name, "CONTOSO"
    user: str  # sAMAccountName, "svc-ucware"
    password: str
    upn: str = ""  # "svc-ucware@contoso.de"
    impersonation: bool = True  # holds ApplicationImpersonation
    scope: frozenset[str] | None = None  # RBAC management scope: these mailboxes only
    locked: bool = False
    bad_logons: int = 0  # failed third legs, as the DC counts them (badPwdCount)
    logons: int = 0  # successful handshakes

    def __post_init__(self) -> None:
        ISSUED_SECRETS.add(self.password)

    @property
    def name(self) -> str:
        return f"{self.domain}\\{self.user}"

    def may_impersonate(self, smtp: str) -> bool:
        if not self.impersonation:
            return False
        return self.scope is None or smtp.lower() in self.scope


@dataclass(slots=True)
class Refusal:
    """A 401 to send instead of the EWS answer."""

    status: int
    headers: dict[str, str | list[str]]
    body: bytes = b""


@dataclass
class NtlmAcceptor:
    """The accounts of the fake's domain and the handshake state of each connection."""

    lockout_threshold: int | None = None
    accounts: list[ServiceAccount] = field(default_factory=list)
    # what happened at the third leg: "ok" / "bad_password" / "locked" / "unknown_user" / ...
    outcomes: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""  # this fake's credential file
        self._bindings: GssChannelBindings | None = None
        self._write()

    def use_certificate(self, pem: Path | str | None) -> None:
        """Extended Protection: require channel bindings naming this server certificate
        (None: accept any, as with Extended Protection off)."""
        if pem is None:
            self._bindings = None
            return
        cert = x509.load_pem_x509_certificate(Path(pem).read_bytes())
        # RFC 5929 tls-server-end-point: the certificate's hash (SHA-256 for ours).
        self._bindings = GssChannelBindings(
            application_data=b"tls-server-end-point:" + cert.fingerprint(hashes.SHA256()))

    # -- the directory ---------------------------------------------------------------------------
    def add_account(self, user: str, password: str, domain: str = "CONTOSO", upn: str = "",
                    impersonation: bool = True, scope: Iterable[str] | None = None
                    ) -> ServiceAccount:
        acct = ServiceAccount(domain.upper(), user, password, upn, impersonation,
                              frozenset(s.lower() for s in scope) if scope is not None else None)
        with self._lock:
            self.accounts.append(acct)
            self._write()
        return acct

    def set_password(self, account: ServiceAccount, password: str) -> None:
        """The admin changed the service account's password in Active Directory."""
        ISSUED_SECRETS.add(password)
        with self._lock:
            account.password = password
            self._write()

    def _write(self) -> None:
        from spnego._ntlm_raw.crypto import ntowfv1  # the NT hash; pyspnego's own

        lines = []
        for a in self.accounts:
            nt = base64.b16encode(ntowfv1(a.password)).decode()
            for login in filter(None, (a.name, a.upn)):
                lines.append(f"{login}:1000:{'0' * 32}:{nt}:[U]:LCT-00000000")
        self._text = "\n".join(lines) + "\n"

    def _account(self, principal: str) -> ServiceAccount | None:
        low = principal.lower()
        for a in self.accounts:
            if low in (a.name.lower(), a.upn.lower()):
                return a
        return None

    # -- the handshake -----------------------------------------------------------------------------
    def authenticate(self, conn: Connection, header: str | None) -> ServiceAccount | Refusal:
        """The account this request runs as, or the 401 that continues (or ends) the handshake."""
        if not header:
            if conn.ntlm_account is not None:
                return conn.ntlm_account  # an authenticated connection
            return _challenge()
        scheme, _, token_b64 = header.partition(" ")
        scheme = next((s for s in _CHALLENGE if s.lower() == scheme.lower()), "")
        try:
            token = base64.b64decode(token_b64.strip(), validate=True)
        except ValueError:
            token = b""
        if not scheme or not token:
            return _challenge()
        if token.startswith(b"NTLMSSP\x00\x01"):  # leg 1: negotiate -> challenge
            # NTLM in a Negotiate header without the SPNEGO wrapper, as Windows accepts it.
            conn.ntlm_account = None
            with _credentials(self._text):
                conn.ntlm_context = spnego.server(
                    protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm,
                    channel_bindings=self._bindings)
                challenge = conn.ntlm_context.step(token)
            return Refusal(401, {"WWW-Authenticate": f"{scheme} "
                                 f"{base64.b64encode(challenge or b'').decode()}"})
        ctx, conn.ntlm_context = conn.ntlm_context, None
        if ctx is None or not token.startswith(b"NTLMSSP\x00\x03"):
            # No challenge on this connection (the client switched connections), or junk.
            self._count("no_handshake")
            return _challenge()
        with self._lock:
            principal = _principal(token)
            acct = self._account(principal)
            if acct is not None and acct.locked:
                self._count("locked")
                return _challenge(LOCKED_OUT)
            try:
                with _credentials(self._text):
                    ctx.step(token)
            except SpnegoError as exc:
                if acct is None:
                    self._count("unknown_user")
                elif "bindings" in str(exc).lower():
                    self._count("channel_binding")
                else:
                    self._count("bad_password")
                    acct.bad_logons += 1
                    if self.lockout_threshold and acct.bad_logons >= self.lockout_threshold:
                        acct.locked = True
                return _challenge()
            assert acct is not None  # the file names exactly our accounts
            acct.bad_logons = 0
            acct.logons += 1
            self._count("ok")
        conn.ntlm_account = acct
        return acct

    def _count(self, what: str) -> None:
        self.outcomes[what] += 1


def _challenge(body: bytes = b"") -> Refusal:
    """IIS' 401: both schemes, one header each."""
    return Refusal(401, {"WWW-Authenticate": list(_CHALLENGE),
                         "Content-Type": "text/html"}, body or
                   b"<html><head><title>401 - Unauthorized</title></head><body>"
                   b"<h2>401 - Unauthorized: Access is denied due to invalid credentials."
                   b"</h2></body></html>")


@contextmanager
def _credentials(text: str) -> Iterator[None]:
    """The process's $NTLM_USER_FILE holds ``text`` while pyspnego's acceptor reads it (when
    it is created and at the third leg)."""
    with _FILE_LOCK:
        _USER_FILE.write_text(text, encoding="utf-8")
        yield


def _principal(authenticate: bytes) -> str:
    """``DOMAIN\\user`` (or the UPN) of an NTLM authenticate message, read as the acceptor
    will (pyspnego's own parser)."""
    from spnego._ntlm_raw.messages import Authenticate

    msg = Authenticate.unpack(authenticate)
    user = msg.user_name or ""
    return f"{msg.domain_name}\\{user}" if msg.domain_name else user
