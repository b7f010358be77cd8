"""Fixtures for the fake Exchange's own tests: a small tenant, a running server, real clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from exchangelib import Account
from exchangelib.protocol import close_connections

from ucware_contactsync.testing import App, FakeExchange, Tenant, generate_tenant
from ucware_contactsync.testing.clients import ews_account, graph_session, trust, untrust


@pytest.fixture
def tenant() -> Tenant:
    """3 mailboxes x 60 contacts, 2 subfolders (one with a nested child), 2 lists each."""
    return generate_tenant(seed=7, mailboxes=3, contacts_per_mailbox=60)


@pytest.fixture
def fx(tenant: Tenant) -> Iterator[FakeExchange]:
    with FakeExchange(tenant) as server:
        trust(server)
        yield server
        untrust(server)
    close_connections()  # drop exchangelib's cached Protocol and its pooled sessions


@pytest.fixture
def app(tenant: Tenant) -> App:
    return next(iter(tenant.apps.values()))


@pytest.fixture
def account(fx: FakeExchange) -> Callable[..., Account]:
    """account(smtp, client_id=…, secret=…, retry_policy=…) -> impersonating Account."""

    def make(smtp: str, **kwargs: Any) -> Account:
        return ews_account(fx, smtp, **kwargs)

    return make


@pytest.fixture
def graph(fx: FakeExchange) -> Callable[..., requests.Response]:
    """graph(path_or_url, **kwargs) -> Response of a GET with a fresh app token."""
    session = graph_session(fx)

    def get(path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{fx.graph_url}/v1.0/{path.lstrip('/')}"
        kwargs.setdefault("timeout", 10)
        return session.get(url, **kwargs)

    return get
