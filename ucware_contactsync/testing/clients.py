"""Client-side glue for tests: real exchangelib / requests pointed at a :class:`FakeExchange`.

Nothing here mocks anything; it is the configuration a production client needs for a private
cloud (token URL + scope from the configured URLs, TLS trust from ``ca_bundle``), bundled so
tests of other modules can reach the fake in one line. Imports exchangelib lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from exchangelib import Account, OAuth2Credentials

    from .server import FakeExchange

# The fields a contact sync asks exchangelib for (``qs.only(*EWS_FIELDS)``).
EWS_FIELDS = ("display_name", "given_name", "surname", "company_name", "department",
              "job_title", "email_addresses", "phone_numbers", "categories")

# CA file to trust per origin (scheme://host:port), for plain requests sessions.
CA_BY_ORIGIN: dict[str, str] = {}


class CAAdapter(requests.adapters.HTTPAdapter):
    """Verify TLS against the registered CA of the origin being called."""

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url)
        ca = CA_BY_ORIGIN.get(f"{parts.scheme}://{parts.netloc}")
        if ca:
            kwargs["verify"] = ca
        return super().send(request, *args, **kwargs)


def trust(fx: FakeExchange) -> None:
    """Make exchangelib trust ``fx``'s CA (the EWS source's own patches and trust map)."""
    from ..sources import exchangelib_patches

    CA_BY_ORIGIN[fx.base_url] = fx.ca_file
    exchangelib_patches.apply()
    exchangelib_patches.trust(fx.base_url, fx.ca_file)


def untrust(fx: FakeExchange) -> None:
    from ..sources import exchangelib_patches

    CA_BY_ORIGIN.pop(fx.base_url, None)
    exchangelib_patches.forget(fx.base_url)


def ews_credentials(fx: FakeExchange, client_id: str, secret: str,
                    tenant_id: str | None = None) -> OAuth2Credentials:
    """OAuth2Credentials whose token URL and scope point at ``fx`` (exchangelib hard-codes
    login.microsoftonline.com and outlook.office365.com; overriding both properties works)."""
    from exchangelib import OAuth2Credentials

    class FakeCloudCredentials(OAuth2Credentials):
        @property
        def token_url(self) -> str:
            return fx.token_url(self.tenant_id)

        @property
        def scope(self) -> list[str]:
            return [fx.scope]

    return FakeCloudCredentials(client_id=client_id, client_secret=secret,
                                tenant_id=tenant_id or fx.tenant.tenant_id)


def ews_account(fx: FakeExchange, smtp: str, client_id: str | None = None,
                secret: str | None = None, retry_policy: Any = None,
                credentials: OAuth2Credentials | None = None) -> Account:
    """An impersonating exchangelib Account on ``fx`` (first app of the tenant by default)."""
    from exchangelib import IMPERSONATION, OAUTH2, Account, Configuration, Version
    from exchangelib.version import EXCHANGE_O365

    trust(fx)
    if credentials is None:
        app = fx.tenant.app(client_id) if client_id else next(iter(fx.tenant.apps.values()))
        credentials = ews_credentials(fx, app.client_id, secret or app.secret)
    kwargs: dict[str, Any] = {}
    if retry_policy is not None:
        kwargs["retry_policy"] = retry_policy
    cfg = Configuration(service_endpoint=fx.ews_url, credentials=credentials, auth_type=OAUTH2,
                        version=Version(build=EXCHANGE_O365, api_version="Exchange2016"),
                        **kwargs)
    return Account(smtp, access_type=IMPERSONATION, config=cfg, autodiscover=False)


def post_token(fx: FakeExchange, client_id: str, secret: str, scope: str | None = None,
               tenant_id: str | None = None, **extra: str) -> requests.Response:
    """The raw token response (for tests of error handling); ``extra`` overrides form fields."""
    data = {"grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret, "scope": scope or fx.scope, **extra}
    return requests.post(fx.token_url(tenant_id), data=data, verify=fx.ca_file, timeout=10)


def fetch_token(fx: FakeExchange, client_id: str | None = None, secret: str | None = None,
                scope: str | None = None) -> str:
    """An access token from ``fx`` by the client-credentials grant (raises on errors)."""
    app = fx.tenant.app(client_id) if client_id else next(iter(fx.tenant.apps.values()))
    r = requests.post(fx.token_url(), verify=fx.ca_file, timeout=10, data={
        "grant_type": "client_credentials", "client_id": app.client_id,
        "client_secret": secret or app.secret, "scope": scope or fx.scope})
    r.raise_for_status()
    return str(r.json()["access_token"])


def graph_session(fx: FakeExchange, client_id: str | None = None,
                  secret: str | None = None) -> requests.Session:
    """A requests Session trusting ``fx`` with a bearer token in its headers.

    ``session.verify = ca_file`` alone is NOT enough: with ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE`` in the environment, requests lets the variable win over
    ``Session.verify`` (psf/requests#3829). Passing ``verify=`` per request, or an adapter
    that sets it (as here), works.
    """
    s = requests.Session()
    s.verify = fx.ca_file
    CA_BY_ORIGIN[fx.base_url] = fx.ca_file
    s.mount(fx.base_url, CAAdapter())
    s.headers["Authorization"] = f"Bearer {fetch_token(fx, client_id, secret)}"
    return s
