"""The fake Graph's JSON batching and contact-folder delta, with plain requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from ucware_contactsync.testing import FakeExchange, Tenant
from ucware_contactsync.testing.clients import graph_session

ANNA = "anna.berg@contoso.de"
Get = Callable[..., requests.Response]


def batch(fx: FakeExchange, requests_: list[dict[str, Any]]) -> requests.Response:
    s = graph_session(fx)
    return s.post(f"{fx.graph_url}/v1.0/$batch", json={"requests": requests_}, timeout=10)


def sub(i: int, url: str, **headers: str) -> dict[str, Any]:
    return {"id": str(i), "method": "GET", "url": url, "headers": headers}


def test_batch_answers_each_sub_request_with_its_own_status(fx: FakeExchange,
                                                            tenant: Tenant) -> None:
    mbx = tenant.mailbox(ANNA)
    first = next(iter(mbx.contacts.items.values()))
    r = batch(fx, [sub(1, f"/users/{ANNA}/contacts/{first.graph_id}?$select=displayName"),
                   sub(2, f"/users/{ANNA}/contacts/AAMkNOPE"),
                   sub(3, "/users/nobody@contoso.de/contacts")])
    assert r.status_code == 200
    got = {x["id"]: x for x in r.json()["responses"]}
    assert got["1"]["status"] == 200
    assert got["1"]["body"]["displayName"] == (first.display_name or None)
    assert got["2"]["status"] == 404
    assert got["2"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert got["3"]["status"] == 404
    log = fx.requests_for(api="graph")
    assert [r.operation for r in log if r.round_trip] == ["$batch"]
    assert [r.status for r in log if not r.round_trip] == [200, 404, 404]


def test_more_than_twenty_is_400(fx: FakeExchange) -> None:
    r = batch(fx, [sub(i, f"/users/{ANNA}/contacts?$top=1") for i in range(21)])
    assert r.status_code == 400
    assert "20" in r.json()["error"]["message"]
    assert not [x for x in fx.requests_for(api="graph") if not x.round_trip]


def test_fifth_request_for_one_mailbox_is_throttled(fx: FakeExchange) -> None:
    r = batch(fx, [sub(i, f"/users/{ANNA}/contacts?$top=1") for i in range(5)]
              + [sub(9, "/users/juergen.schaefer@contoso.de/contacts?$top=1")])
    statuses = {x["id"]: x["status"] for x in r.json()["responses"]}
    assert [statuses[str(i)] for i in range(5)] == [200, 200, 200, 200, 429]
    assert statuses["9"] == 200  # another mailbox has its own four
    throttled = next(x for x in r.json()["responses"] if x["status"] == 429)
    assert throttled["headers"]["Retry-After"] == "1"
    assert "MailboxConcurrency" in throttled["body"]["error"]["message"]
    # The slots are free again once the batch is answered.
    again = batch(fx, [sub(1, f"/users/{ANNA}/contacts?$top=1")])
    assert again.json()["responses"][0]["status"] == 200


def test_sub_request_throttle_knob(fx: FakeExchange) -> None:
    fx.faults.throttle_graph_subrequests(count=1, retry_after_s=3)
    r = batch(fx, [sub(1, f"/users/{ANNA}/contacts?$top=1"),
                   sub(2, f"/users/{ANNA}/contacts?$top=2")])
    assert r.status_code == 200
    assert [(x["status"], x["headers"].get("Retry-After")) for x in r.json()["responses"]] \
        == [(429, "3"), (200, None)]


def test_bad_token_fails_the_whole_batch(fx: FakeExchange) -> None:
    r = requests.post(f"{fx.graph_url}/v1.0/$batch", verify=fx.ca_file, timeout=10,
                      headers={"Authorization": "Bearer nope"},
                      json={"requests": [sub(1, f"/users/{ANNA}/contacts")]})
    assert r.status_code == 401


def test_folder_delta_lists_then_tracks_changes(fx: FakeExchange, tenant: Tenant,
                                               graph: Get) -> None:
    mbx = tenant.mailbox(ANNA)
    r = graph(f"users/{ANNA}/contactFolders/delta")
    body = r.json()
    ids = {f["id"]: f for f in body["value"]}
    expected = [f.graph_id for f in mbx.contact_folders()]
    assert set(ids) == set(expected)
    assert ids[mbx.contacts.graph_id]["parentFolderId"] == mbx.msgfolderroot.graph_id
    link = body["@odata.deltaLink"]
    assert graph(link).json()["value"] == []  # nothing changed
    added = mbx.add_folder("Neu")
    gone = [f for f in mbx.contacts.children() if f is not added][0]
    mbx.delete_folder(gone)
    changes = graph(link).json()["value"]
    assert {f["id"] for f in changes if "@removed" not in f} == {added.graph_id}
    assert {f["id"] for f in changes if "@removed" in f} >= {gone.graph_id}


@pytest.mark.parametrize("what", ["epoch", "garbage"])
def test_folder_delta_410(fx: FakeExchange, tenant: Tenant, graph: Get, what: str) -> None:
    link = graph(f"users/{ANNA}/contactFolders/delta").json()["@odata.deltaLink"]
    if what == "epoch":
        fx.faults.invalidate_sync_states(ANNA)
    else:
        link = link.split("deltatoken=")[0] + "deltatoken=garbage"
    assert graph(link).status_code == 410
