"""The fake's knobs for the fault matrix (reliability/network.py), seen from real clients:
``every``, malformed responses, held-back responses, token outages and short first tokens,
and contact data no Outlook user should have (notes of megabytes, 500 numbers, control
characters)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from exchangelib import Account
from exchangelib.errors import ErrorServerBusy

from ucware_contactsync.testing import FakeExchange, Tenant
from ucware_contactsync.testing.clients import EWS_FIELDS, fetch_token, post_token

ANNA = "anna.berg@contoso.de"
Get = Callable[..., requests.Response]


def test_every_hits_every_nth_request_until_count(fx: FakeExchange, graph: Get) -> None:
    fx.faults.throttle_graph(count=3, retry_after_s=0.05, every=2)
    statuses = [graph(f"users/{ANNA}/contactFolders").status_code for _ in range(8)]
    assert statuses == [200, 429, 200, 429, 200, 429, 200, 200]
    fx.faults.throttle_graph(count=1, retry_after_s=0.05)
    assert graph(f"users/{ANNA}/contacts").headers["Retry-After"] == "0.05"


def test_every_on_ews(fx: FakeExchange, account: Callable[..., Account]) -> None:
    fx.faults.throttle_ews(count=1, backoff_ms=50, every=3)
    acc = account(ANNA)
    folder = acc.contacts  # GetFolder x2 (root, contacts): the 3rd request is hit
    with pytest.raises(ErrorServerBusy):
        list(folder.all().only(*EWS_FIELDS))
    assert [r.fault for r in fx.requests if r.api == "ews"] == [None, None, "throttle_ews"]


def test_malformed_response_cuts_the_body_not_the_http(fx: FakeExchange, graph: Get) -> None:
    whole = graph(f"users/{ANNA}/contacts")
    fx.faults.malformed_response(count=1, api="graph")
    cut = graph(f"users/{ANNA}/contacts")
    assert cut.status_code == 200 and len(cut.content) == len(whole.content) // 2
    with pytest.raises(ValueError):
        cut.json()
    assert graph(f"users/{ANNA}/contacts").json()["value"]
    rec = [r for r in fx.requests if r.fault == "malformed_response"]
    assert len(rec) == 1 and rec[0].response_bytes == len(cut.content)


def test_slow_responses_only_the_next_ones_of_one_api(fx: FakeExchange, graph: Get) -> None:
    fx.faults.slow_responses(count=1, seconds=1.0, api="graph")
    fetch_token(fx)  # the token endpoint is not held back
    with pytest.raises(requests.exceptions.ReadTimeout):
        graph(f"users/{ANNA}/contacts", timeout=0.3)
    started = time.monotonic()
    assert graph(f"users/{ANNA}/contacts", timeout=5).status_code == 200
    assert time.monotonic() - started < 0.9
    assert fx.faults.hits["slow_responses"] == 1


def test_token_outage_after_n_for_t_seconds(fx: FakeExchange, tenant: Tenant) -> None:
    app = next(iter(tenant.apps.values()))
    fx.faults.token_outage(after=2, seconds=0.5)
    codes = [post_token(fx, app.client_id, app.secret).status_code for _ in range(4)]
    assert codes == [200, 200, 503, 503]
    time.sleep(0.6)
    assert post_token(fx, app.client_id, app.secret).status_code == 200
    fx.faults.token_outage(after=0)  # until switched off
    assert post_token(fx, app.client_id, app.secret).status_code == 503
    fx.faults.token_endpoint_down(False)
    assert post_token(fx, app.client_id, app.secret).status_code == 200


def test_token_lifetime_for_the_next_few(fx: FakeExchange, tenant: Tenant) -> None:
    app = next(iter(tenant.apps.values()))
    fx.faults.token_lifetime(5)
    fx.faults.token_lifetime(2, count=1)
    lifetimes = [post_token(fx, app.client_id, app.secret).json()["expires_in"]
                 for _ in range(3)]
    assert lifetimes == [2, 5, 5]


def test_notes_served_only_when_asked(fx: FakeExchange, tenant: Tenant, graph: Get,
                                      account: Callable[..., Account]) -> None:
    notes = "Notiz " * 200_000  # 1.2 MB
    item = tenant.mailbox(ANNA).add_contact(given_name="Lang", numbers={"business": "089 1"},
                                            notes=notes)
    sel = graph(f"users/{ANNA}/contacts/{item.graph_id}?$select=displayName,personalNotes")
    assert sel.json()["personalNotes"] == notes
    assert "personalNotes" not in graph(f"users/{ANNA}/contacts/{item.graph_id}"
                                        "?$select=displayName").json()
    acc = account(ANNA)
    with_body = list(acc.fetch(ids=[(item.ews_id, None)], only_fields=["body"]))[0]
    assert with_body.body == notes
    without = list(acc.fetch(ids=[(item.ews_id, None)], only_fields=["display_name"]))[0]
    assert without.body is None
    big = [r.response_bytes for r in fx.requests if r.api in ("ews", "graph")]
    assert sorted(big)[-2] > 1_000_000 and sorted(big)[0] < 10_000


def test_extra_numbers_and_control_characters(fx: FakeExchange, tenant: Tenant, graph: Get,
                                              account: Callable[..., Account]) -> None:
    item = tenant.mailbox(ANNA).add_contact(
        given_name="Bell\x07", surname="Null\x00Tab\t", numbers={"business": "1", "home": "2"},
        extra_numbers=[("business", "3"), ("home", "4"), ("mobile", "5")])
    data = graph(f"users/{ANNA}/contacts/{item.graph_id}?$select=givenName,surname,"
                 "businessPhones,homePhones,mobilePhone").json()
    assert data["businessPhones"] == ["1", "3"] and data["homePhones"] == ["2", "4"]
    assert data["mobilePhone"] is None  # Graph has one mobile slot: extras do not reach it
    assert (data["givenName"], data["surname"]) == ("Bell\x07", "Null\x00Tab\t")
    acc = account(ANNA)
    got = list(acc.fetch(ids=[(item.ews_id, None)],
                         only_fields=["given_name", "surname", "phone_numbers"]))[0]
    assert [(p.label, p.phone_number) for p in got.phone_numbers] == [
        ("BusinessPhone", "1"), ("HomePhone", "2"), ("BusinessPhone", "3"), ("HomePhone", "4"),
        ("MobilePhone", "5")]
    # Exchange writes control characters as character references; exchangelib's recovering
    # parser keeps them, except NUL.
    assert (got.given_name, got.surname) == ("Bell\x07", "NullTab\t")
