"""App-only OAuth2 tokens from Entra ID (client credentials), shared by the Graph and EWS sources.

Tokens are fetched with requests-oauthlib's ``BackendApplicationClient`` and renewed before
they expire (never with a refresh-token grant: this flow has no refresh token, and Entra
answers such a grant with AADSTS900144). Entra's errors are translated into one line saying
what to fix.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests_oauthlib import OAuth2Session
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .base import HINT_TLS, Kind, SourceError, first_line
from .origin import OriginAdapter, mount

if TYPE_CHECKING:
    from ..settings import Settings

TOKEN_ATTEMPTS = 3  # tries of the token endpoint per fetch (a TRANSIENT failure only)

# AADSTS code -> what the admin has to do.
ENTRA_ERRORS: dict[str, str] = {
    "7000215": "the client secret is wrong: copy the secret's *Value* (not its ID) from Entra "
               "> App registrations > Certificates & secrets, then run "
               "'ucware-contactsync config set client_secret VALUE'",
    "7000222": "the client secret has expired: create a new one in Entra > App registrations > "
               "Certificates & secrets, then run "
               "'ucware-contactsync config set client_secret VALUE'",
    "700016": "no app with this client id in the tenant: check client_id (Application (client) "
              "ID) and tenant_id, and that the app is registered in this tenant",
    "90002": "the tenant does not exist: check tenant_id (Directory (tenant) ID)",
    "900023": "the tenant id is malformed: use the Directory (tenant) ID GUID",
    "65001": "admin consent is missing: Entra > App registrations > API permissions > "
             "Grant admin consent",
    "500011": "the API is not enabled for the tenant: check graph_url / ews_url and the "
              "app's API permissions",
    "1002012": "the scope is invalid: check graph_url / ews_url",
    "70011": "the scope is invalid: check graph_url / ews_url",
    "7000218": "the client secret is missing: run "
               "'ucware-contactsync config set client_secret VALUE'",
    "900144": "the token request lacked a field: report this as a bug",
}
_AADSTS = re.compile(r"AADSTS(\d+)")


def scope_for(api_url: str) -> str:
    """OAuth scope = origin of the API URL + /.default (works for national clouds and tests)."""
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


def explain(description: str) -> tuple[str, str]:
    """(AADSTS code or '', hint) for an Entra error description."""
    m = _AADSTS.search(description or "")
    code = m.group(1) if m else ""
    return code, ENTRA_ERRORS.get(code, "check tenant_id, client_id and client_secret in Entra")


def token_roles(access_token: str) -> list[str]:
    """The ``roles`` claim of a JWT (read, not verified: it only chooses the API)."""
    try:
        payload = access_token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError):
        return []
    roles = claims.get("roles", [])
    return [str(r) for r in roles] if isinstance(roles, list) else []


class TokenProvider:
    """Client-credentials tokens for one scope; thread-safe; renews ahead of expiry."""

    def __init__(self, login_url: str, tenant_id: str, client_id: str, client_secret: str,
                 scope: str, verify: str | bool = True, timeout: float = 30.0) -> None:
        self.login_url = login_url
        self.token_url = f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.verify = verify
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenProvider({self.token_url!r}, {self.client_id!r}, scope={self.scope!r})"

    def _fresh_enough(self) -> bool:
        if not self._token:
            return False
        lifetime = float(self._token.get("expires_in", 3600))
        # Renew early: a 3600 s token 5 min before it ends, a 60 s one after 45 s.
        margin = min(300.0, max(2.0, lifetime / 4))
        return time.time() < float(self._token["expires_at_real"]) - margin

    def token(self) -> dict[str, Any]:
        """The current token dict (``access_token``, ``expires_at``...), fetched if needed."""
        with self._lock:
            token = self._token
            if token is None or not self._fresh_enough():
                token = self._token = self._fetch()
            return dict(token)

    def access_token(self) -> str:
        return str(self.token()["access_token"])

    def roles(self) -> list[str]:
        return token_roles(self.access_token())

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> dict[str, Any]:
        """A new token; an endpoint that is briefly unavailable (Entra answers 503 during
        short outages) is asked again after 0.5 s and 1 s before the mailbox fails."""
        retrying = Retrying(
            stop=stop_after_attempt(TOKEN_ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=2.0),
            retry=retry_if_exception(lambda e: isinstance(e, SourceError)
                                     and e.kind is Kind.TRANSIENT),
            reraise=True,
        )
        return retrying(self._fetch_once)

    def _fetch_once(self) -> dict[str, Any]:
        if not self._secret:
            raise SourceError(Kind.AUTH, "no client secret is configured",
                              "run 'ucware-contactsync config set client_secret VALUE'")
        session = OAuth2Session(client=BackendApplicationClient(client_id=self.client_id))
        # The body holds the secret: a redirect (307/308 would repeat it) is never followed.
        mount(session, OriginAdapter(self.login_url, "login_url", Kind.AUTH,
                                     same_origin_redirects=False))
        try:
            token = session.fetch_token(
                token_url=self.token_url, client_id=self.client_id,
                client_secret=self._secret, scope=[self.scope], include_client_id=True,
                # The stubs say bool; requests-oauthlib hands it to requests, which takes a path.
                timeout=self.timeout, verify=self.verify,  # type: ignore[arg-type]
            )
        except OAuth2Error as exc:
            if exc.error in ("temporarily_unavailable", "server_error") or \
                    (exc.status_code or 0) >= 500:
                raise SourceError(Kind.TRANSIENT, f"the token endpoint {self.token_url} is "
                                  f"unavailable ({exc.error})", "Entra has an outage or "
                                  "login_url is wrong; the next run retries") from None
            code, hint = explain(exc.description or str(exc))
            label = f"AADSTS{code}" if code else (exc.error or "error")
            raise SourceError(Kind.AUTH, f"Entra refused the token request ({label})", hint
                              ) from None
        except requests.exceptions.SSLError as exc:
            raise SourceError(Kind.AUTH,
                              f"TLS error talking to {self.token_url}: {first_line(exc)}",
                              HINT_TLS) from None
        except (requests.RequestException, ValueError) as exc:
            raise SourceError(Kind.TRANSIENT, f"the token endpoint {self.token_url} failed: "
                              f"{first_line(exc)}", "check network access to login_url; the next "
                              "run retries") from None
        finally:
            session.close()
        self.fetches += 1
        token = dict(token)
        token["expires_at_real"] = float(token.get("expires_at") or
                                         time.time() + float(token.get("expires_in", 3600)))
        return token


def token_provider(s: Settings, api_url: str) -> TokenProvider:
    """The app's client-credentials tokens for the API at ``api_url``: the one place that
    builds a ``TokenProvider`` from the settings."""
    return TokenProvider(s.login_url, s.tenant_id, s.client_id, s.client_secret,
                         scope_for(api_url), s.verify)
