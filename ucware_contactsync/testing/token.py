"""Fake Microsoft Entra ID token endpoint: client-credentials grant, HS256 JWTs, Entra errors.

Tokens are signed with the tenant's key (not the server's), so a token stays valid when a
test stops one :class:`FakeExchange` and starts another on the same tenant, as real tokens do.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from .tenant import Tenant


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(key: bytes, claims: dict[str, Any]) -> str:
    header = {"typ": "JWT", "alg": "HS256", "kid": "fake-exchange"}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


class InvalidToken(Exception):
    """The bearer token is malformed, forged, expired or for another audience."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


def decode_unverified(token: str) -> dict[str, Any]:
    """Claims of a JWT without checking anything (tests use it to look at ``roles``)."""
    claims: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return claims


def verify_token(key: bytes, token: str, now: float | None = None) -> dict[str, Any]:
    """Return the claims of a valid token, else raise :class:`InvalidToken`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("IDX14100: JWT is not well formed.")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii", "replace")
    expected = hmac.new(key, signing_input, hashlib.sha256).digest()
    try:
        sig = b64url_decode(parts[2])
        claims: dict[str, Any] = json.loads(b64url_decode(parts[1]))
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("IDX14100: JWT is not well formed.") from exc
    if not hmac.compare_digest(sig, expected):
        raise InvalidToken("IDX10511: Signature validation failed.")
    now = time.time() if now is None else now
    if now >= float(claims.get("exp", 0)):
        raise InvalidToken("Lifetime validation failed, the token is expired.", expired=True)
    if now + 300 < float(claims.get("nbf", 0)):  # Entra allows 5 minutes clock skew
        raise InvalidToken("Lifetime validation failed, the token is not yet valid.")
    return claims


# --- the token endpoint -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TokenReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def entra_error(status: int, error: str, code: int, description: str) -> TokenReply:
    """An error body shaped like login.microsoftonline.com's."""
    now = dt.datetime.now(dt.UTC)
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    text = (f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} "
            f"Timestamp: {now:%Y-%m-%d %H:%M:%SZ}")
    return TokenReply(status, {
        "error": error,
        "error_description": text,
        "error_codes": [code],
        "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }, {})


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    cid, _, secret = raw.partition(":")
    # RFC 6749 2.3.1: id and secret are form-encoded inside Basic.
    return unquote_plus(cid), unquote_plus(secret)


def handle_token_request(tenant: Tenant, tenant_in_path: str, body: bytes,
                         authorization: str | None, lifetime: int) -> TokenReply:
    """Answer ``POST /{tenant}/oauth2/v2.0/token`` like Entra ID does for app-only clients."""
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"),
                                          keep_blank_values=True).items()}
    if tenant_in_path.lower() not in (tenant.tenant_id.lower(), tenant.domain.lower()):
        return entra_error(400, "invalid_request", 90002,
                           f"Tenant '{tenant_in_path}' not found. Check to make sure you have the "
                           "correct tenant ID and are signing into the correct cloud.")
    grant = form.get("grant_type", "")
    if grant == "refresh_token" or (grant != "client_credentials" and "refresh_token" in form):
        if not form.get("refresh_token"):
            # What requests-oauthlib sends on expiry in exchangelib (no refresh token exists).
            return entra_error(400, "invalid_request", 900144,
                               "The request body must contain the following parameter: "
                               "'refresh_token'.")
        return entra_error(400, "invalid_grant", 9002313,
                           "Invalid request. Request is malformed or invalid.")
    if not grant:
        return entra_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'grant_type'.")
    if grant != "client_credentials":
        return entra_error(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type "
                           f"'{grant}'.")
    basic = _basic_auth(authorization)
    client_id = form.get("client_id") or (basic[0] if basic else "")
    secret = form.get("client_secret") or (basic[1] if basic else "")
    if not client_id:
        return entra_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'client_id'.")
    app = tenant.apps.get(client_id.lower())
    if app is None:
        return entra_error(400, "unauthorized_client", 700016,
                           f"Application with identifier '{client_id}' was not found in the "
                           f"directory '{tenant.domain}'. This can happen if the application has "
                           "not been installed by the administrator of the tenant or consented "
                           "to by any user in the tenant. You may have sent your authentication "
                           "request to the wrong tenant.")
    if not secret:
        return entra_error(401, "invalid_client", 7000216,
                           "'client_assertion', 'client_secret' or 'request' is required for the "
                           "'client_credentials' grant type.")
    if not hmac.compare_digest(secret.encode(), app.secret.encode()):
        return entra_error(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in the "
                           f"request is the client secret value, not the client secret ID, for a "
                           f"secret added to app '{app.client_id}'.")
    if app.secret_expired:
        return entra_error(401, "invalid_client", 7000222,
                           f"The provided client secret keys for app '{app.client_id}' are "
                           "expired. Visit the Azure portal to create new keys for your app: "
                           "https://aka.ms/NewClientSecret, or consider using certificate "
                           "credentials for added security: https://aka.ms/certCreds.")
    scope = form.get("scope", "").strip()
    if not scope:
        return entra_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'scope'.")
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        return entra_error(400, "invalid_scope", 1002012,
                           f"The provided value for scope {scope} is not valid. Client credential "
                           "flows must have a scope value with /.default suffixed to the "
                           "resource identifier (application ID URI).")
    aud = scopes[0][: -len("/.default")]
    parts = urlsplit(aud)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/"):
        return entra_error(400, "invalid_scope", 70011,
                           f"The provided request must include a 'scope' input parameter. The "
                           f"provided value for the input parameter 'scope' is not valid. "
                           f"The scope {scope} is not valid.")
    t = time.time()
    now = int(t)
    claims = {
        "aud": f"{parts.scheme}://{parts.netloc}",
        "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
        "iat": now,
        "nbf": now,
        # Rounded up: requests-oauthlib computes expires_at = round(now) + expires_in, so the
        # server never rejects a token before the client itself considers it expired.
        "exp": math.ceil(t + lifetime),
        "appid": app.client_id,
        "app_displayname": app.display_name,
        "idtyp": "app",
        "oid": app.object_id,
        "roles": list(app.roles),
        "tid": tenant.tenant_id,
        "ver": "1.0",
    }
    token = issue_token(tenant.signing_key, claims)
    return TokenReply(200, {"token_type": "Bearer", "expires_in": lifetime,
                            "ext_expires_in": lifetime, "access_token": token}, {})
