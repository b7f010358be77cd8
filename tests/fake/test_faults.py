"""Every fault knob, observed from real clients; the request log; start/stop."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import requests
from exchangelib import Account, FaultTolerance
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInvalidSyncStateData,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    MalformedResponseError,
)
from oauthlib.oauth2 import InvalidClientIdError, TemporarilyUnavailableError

from ucware_contactsync.testing import FakeExchange, Tenant
from ucware_contactsync.testing.clients import EWS_FIELDS

ANNA = "anna.berg@contoso.de"
Get = Callable[..., requests.Response]


def read(acc: Account) -> int:
    return len(list(acc.contacts.all().only(*EWS_FIELDS)))


def test_throttle_ews_fail_fast_and_tolerant(fx: FakeExchange,
                                             account: Callable[..., Account]) -> None:
    fx.faults.throttle_ews(1, backoff_ms=250)
    with pytest.raises(ErrorServerBusy) as exc:
        read(account(ANNA))
    assert exc.value.back_off == 0.25
    fx.clear_requests()
    fx.faults.throttle_ews(2, backoff_ms=100)
    assert read(account(ANNA, retry_policy=FaultTolerance(max_wait=10))) > 0
    busy = [r for r in fx.requests if r.fault == "throttle_ews"]
    assert [r.status for r in busy] == [500, 500]
    assert all(r.status == 200 for r in fx.requests if r.api == "ews" and r.fault is None)


def test_throttle_ews_http429_is_not_retried(fx: FakeExchange,
                                             account: Callable[..., Account]) -> None:
    fx.faults.throttle_ews_http429(1, retry_after=3)
    with pytest.raises(MalformedResponseError, match="429"):
        read(account(ANNA, retry_policy=FaultTolerance(max_wait=5)))
    rec = next(r for r in fx.requests if r.fault == "throttle_ews_http429")
    assert rec.status == 429
    assert read(account(ANNA)) > 0  # count consumed


def test_throttle_graph(fx: FakeExchange, graph: Get) -> None:
    fx.faults.throttle_graph(2, retry_after_s=7)
    r = graph(f"users/{ANNA}/contacts")
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "ApplicationThrottled"
    assert graph(f"users/{ANNA}/contacts").status_code == 429
    assert graph(f"users/{ANNA}/contacts").status_code == 200
    fx.faults.throttle_graph(1, retry_after_s=2, status=503)
    r = graph(f"users/{ANNA}/contacts")
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"


@pytest.mark.parametrize(("kind", "ews_exc", "graph_status"), [
    ("missing", ErrorNonExistentMailbox, 404),
    ("denied", ErrorImpersonateUserDenied, 403),
    ("http500", MalformedResponseError, 500),
])
def test_fail_mailbox(fx: FakeExchange, account: Callable[..., Account], graph: Get,
                      kind: str, ews_exc: type[Exception], graph_status: int) -> None:
    fx.faults.fail_mailbox(ANNA.upper(), kind)  # type: ignore[arg-type]
    with pytest.raises(ews_exc):
        read(account(ANNA))
    assert graph(f"users/{ANNA}/contacts").status_code == graph_status
    # Other mailboxes are unaffected; clear() heals.
    assert read(account("juergen.schaefer@contoso.de")) > 0
    fx.faults.clear(ANNA)
    assert read(account(ANNA)) > 0
    assert graph(f"users/{ANNA}/contacts").status_code == 200


def test_token_endpoint_down(fx: FakeExchange, account: Callable[..., Account]) -> None:
    fx.faults.token_endpoint_down(True)
    with pytest.raises(TemporarilyUnavailableError, match="AADSTS90033"):
        read(account(ANNA))
    fx.faults.token_endpoint_down(False)
    from exchangelib.protocol import close_connections

    close_connections()  # exchangelib's GitHub issue 1373: the failed session is lost to the pool
    assert read(account(ANNA)) > 0


def test_token_expiry_as_exchangelib_sees_it(fx: FakeExchange,
                                             account: Callable[..., Account]) -> None:
    fx.faults.token_lifetime(2)
    acc = account(ANNA)
    contacts = acc.contacts
    time.sleep(2.6)  # oauthlib rounds expires_at to the second
    # requests-oauthlib tries a refresh_token grant without a refresh token -> AADSTS900144.
    with pytest.raises(InvalidClientIdError, match="AADSTS900144"):
        list(contacts.all().only("display_name"))
    assert [r.status for r in fx.requests if r.api == "token"][-2:] == [400, 200]
    # The failing call already fetched a fresh (2 s) token, so the next call works.
    assert len(list(contacts.all().only("display_name"))) > 0


def test_slow(fx: FakeExchange, graph: Get) -> None:
    fx.faults.slow(0.3)
    t = time.monotonic()
    assert graph(f"users/{ANNA}/contacts").status_code == 200
    assert time.monotonic() - t >= 0.3
    with pytest.raises(requests.exceptions.ReadTimeout):
        graph(f"users/{ANNA}/contacts", timeout=0.1)
    fx.faults.slow(0)


def test_drop_connection(fx: FakeExchange, account: Callable[..., Account],
                         graph: Get) -> None:
    fx.faults.drop_connection(1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        graph(f"users/{ANNA}/contacts")
    assert graph(f"users/{ANNA}/contacts").status_code == 200
    fx.faults.drop_connection(1, api="ews")
    with pytest.raises(ErrorTimeoutExpired, match="IncompleteRead"):
        read(account(ANNA))
    assert [r.api for r in fx.requests if r.fault == "drop_connection"] == ["graph", "ews"]
    assert read(account(ANNA)) > 0


def test_invalidate_and_reset(fx: FakeExchange, account: Callable[..., Account]) -> None:
    acc = account(ANNA)
    contacts = acc.contacts
    list(contacts.sync_items(only_fields=["display_name"]))
    state = contacts.item_sync_state
    fx.faults.invalidate_sync_states(ANNA)
    fx.faults.throttle_ews(5)
    fx.faults.slow(5)
    fx.faults.reset()  # resets knobs, not the invalidated states
    with pytest.raises(ErrorInvalidSyncStateData):
        list(contacts.sync_items(sync_state=state, only_fields=["display_name"]))


def test_request_log(fx: FakeExchange, account: Callable[..., Account], graph: Get) -> None:
    read(account(ANNA))
    graph(f"users/{ANNA}/contactFolders")
    ews = fx.requests_for(api="ews", mailbox=ANNA)
    assert [r.operation for r in ews][:2] == ["GetFolder", "GetFolder"]
    assert {r.path for r in ews} == {"/EWS/Exchange.asmx"}
    assert all("<m:" in r.body and r.method == "POST" for r in ews)
    assert all(r.headers.get("Content-Type", "").startswith("text/xml") for r in ews)
    g = fx.requests_for(api="graph")[-1]
    assert (g.method, g.operation, g.mailbox, g.status) == ("GET", "contactFolders", ANNA, 200)
    assert fx.requests_for(api="token", operation="token")
    fx.clear_requests()
    assert fx.requests == []


def test_stop_and_restart(tenant: Tenant) -> None:
    fx = FakeExchange(tenant).start()
    port = fx.port
    assert fx.running
    fx.stop()
    assert not fx.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    fx.stop()  # idempotent
    with FakeExchange(tenant) as fx2:
        assert fx2.port != 0 and fx2.ews_url.startswith("https://127.0.0.1:")
        r = requests.get(f"{fx2.graph_url}/nothing", verify=fx2.ca_file, timeout=5)
        assert r.status_code == 404
