"""The fake Entra token endpoint: claims, Basic auth, and every error shaped like Entra's."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from ucware_contactsync.testing import App, FakeExchange, Tenant
from ucware_contactsync.testing.clients import post_token
from ucware_contactsync.testing.token import decode_unverified


def test_token_claims(fx: FakeExchange, tenant: Tenant, app: App) -> None:
    r = post_token(fx, app.client_id, app.secret)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    header, payload, sig = body["access_token"].split(".")
    assert sig and base64.urlsafe_b64decode(header + "==")
    claims = decode_unverified(body["access_token"])
    assert claims["aud"] == fx.base_url
    assert claims["tid"] == tenant.tenant_id
    assert claims["appid"] == app.client_id
    assert sorted(claims["roles"]) == sorted(app.roles)
    assert claims["nbf"] <= claims["iat"] <= time.time() < claims["exp"]
    rec = fx.requests[-1]
    assert (rec.api, rec.operation, rec.status) == ("token", "token", 200)
    assert app.secret not in rec.body and "client_secret=%2A%2A%2A" in rec.body


def test_basic_auth_and_domain_as_tenant(fx: FakeExchange, tenant: Tenant, app: App) -> None:
    r = requests.post(fx.token_url(tenant.domain), verify=fx.ca_file, timeout=10,
                      auth=(app.client_id, app.secret),
                      data={"grant_type": "client_credentials", "scope": fx.scope})
    assert r.status_code == 200, r.text


def _error(r: requests.Response) -> tuple[int, str, int]:
    body = r.json()
    assert {"error", "error_description", "error_codes", "timestamp", "trace_id",
            "correlation_id"} <= set(body)
    code = body["error_codes"][0]
    assert body["error_description"].startswith(f"AADSTS{code}:")
    return r.status_code, body["error"], code


@pytest.mark.parametrize(("case", "expected"), [
    ("unknown_tenant", (400, "invalid_request", 90002)),
    ("unknown_client", (400, "unauthorized_client", 700016)),
    ("wrong_secret", (401, "invalid_client", 7000215)),
    ("expired_secret", (401, "invalid_client", 7000222)),
    ("refresh_without_token", (400, "invalid_request", 900144)),
    ("scope_without_default", (400, "invalid_scope", 1002012)),
    ("scope_not_a_resource", (400, "invalid_scope", 70011)),
])
def test_token_errors(fx: FakeExchange, tenant: Tenant, app: App, case: str,
                      expected: tuple[int, str, int]) -> None:
    cid, secret, scope, tid, extra = app.client_id, app.secret, None, None, {}
    if case == "unknown_tenant":
        tid = "00000000-0000-0000-0000-000000000000"
    elif case == "unknown_client":
        cid = "11111111-2222-3333-4444-555555555555"
    elif case == "wrong_secret":
        secret = "not-the-secret"
    elif case == "expired_secret":
        old = tenant.add_app(secret="old-secret", secret_expired=True)
        cid, secret = old.client_id, old.secret
    elif case == "refresh_without_token":
        extra = {"grant_type": "refresh_token"}
    elif case == "scope_without_default":
        scope = f"{fx.base_url}/EWS.AccessAsUser.All"
    else:
        scope = "contacts/.default"
    assert _error(post_token(fx, cid, secret, scope, tid, **extra)) == expected


def test_token_endpoint_down_and_lifetime(fx: FakeExchange, app: App) -> None:
    fx.faults.token_endpoint_down(True)
    r = post_token(fx, app.client_id, app.secret)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert _error(r)[1:] == ("temporarily_unavailable", 90033)
    fx.faults.token_endpoint_down(False)
    fx.faults.token_lifetime(1)
    r = post_token(fx, app.client_id, app.secret)
    assert r.json()["expires_in"] == 1
    token = r.json()["access_token"]
    time.sleep(max(0.0, decode_unverified(token)["exp"] - time.time()) + 0.05)
    g = requests.get(f"{fx.graph_url}/v1.0/users/anna.berg@contoso.de/contacts",
                     headers={"Authorization": f"Bearer {token}"}, verify=fx.ca_file,
                     timeout=10)
    assert g.status_code == 401
    assert 'error="invalid_token"' in g.headers["WWW-Authenticate"]
    assert "expired" in g.json()["error"]["message"]
    e = requests.post(fx.ews_url, data=b"<x/>", verify=fx.ca_file, timeout=10,
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "text/xml"})
    assert e.status_code == 500  # unparsable body is a schema error before auth
    soap = (b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/'
            b'envelope/"><s:Body><m:GetFolder xmlns:m="http://schemas.microsoft.com/exchange/'
            b'services/2006/messages"/></s:Body></s:Envelope>')
    e = requests.post(fx.ews_url, data=soap, verify=fx.ca_file, timeout=10,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "text/xml"})
    assert e.status_code == 401
    assert 'error="invalid_token"' in e.headers["WWW-Authenticate"]
    assert "expired" in e.headers["x-ms-diagnostics"]


def test_forged_token_rejected(fx: FakeExchange, app: App) -> None:
    token = post_token(fx, app.client_id, app.secret).json()["access_token"]
    h, p, s = token.split(".")
    forged = f"{h}.{p}.{s[:-4]}AAAA"
    g = requests.get(f"{fx.graph_url}/v1.0/users/anna.berg@contoso.de/contacts",
                     headers={"Authorization": f"Bearer {forged}"}, verify=fx.ca_file,
                     timeout=10)
    assert g.status_code == 401
