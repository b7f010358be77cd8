"""Plain requests against the fake Microsoft Graph v1.0 contacts API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from ucware_contactsync.testing import MAPI_TAGS, VISIBLE_MAPI_TAGS, FakeExchange, Tenant
from ucware_contactsync.testing.clients import graph_session

ANNA = "anna.berg@contoso.de"
Get = Callable[..., requests.Response]
SELECT = "displayName,givenName,surname,companyName,businessPhones,mobilePhone,homePhones"


def follow(get: Get, url: str, headers: dict[str, str] | None = None
           ) -> tuple[list[dict[str, Any]], str | None, int]:
    """All pages -> (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    delta = None
    while next_url:
        r = get(next_url, headers=headers or {})
        assert r.status_code == 200, r.text
        pages += 1
        body = r.json()
        items.extend(body["value"])
        next_url = body.get("@odata.nextLink")
        delta = body.get("@odata.deltaLink", delta)
    return items, delta, pages


def test_list_paging_and_fields(fx: FakeExchange, tenant: Tenant, graph: Get) -> None:
    mbx = tenant.mailbox(ANNA)
    items, _, pages = follow(graph, f"users/{ANNA.upper()}/contacts?$top=7")
    expected = [i for i in mbx.contacts.items.values() if i.kind == "contact"]
    assert pages > 1
    assert [i["id"] for i in items] == [e.graph_id for e in expected]  # no lists in Graph
    for got, want in zip(items, expected, strict=True):
        assert got["id"] == want.ews_id.replace("+", "-").replace("/", "_")
        assert got["changeKey"] == want.change_key
        assert got["parentFolderId"] == mbx.contacts.graph_id
        assert got["displayName"] == want.display_name
        assert got["businessPhones"] == [want.numbers[t] for t in ("business", "business2")
                                         if t in want.numbers]
        assert got["mobilePhone"] == want.numbers.get("mobile")
        assert [e["address"] for e in got["emailAddresses"]] == want.emails
        assert "faxNumber" not in got and "singleValueExtendedProperties" not in got
    assert all("+" not in i["id"] and "/" not in i["id"] for i in items)
    assert any("-" in i["id"] or "_" in i["id"] for i in items)


def test_select_is_kept_in_next_link(graph: Get) -> None:
    r = graph(f"users/{ANNA}/contacts", params={"$select": "displayName,mobilePhone",
                                                "$top": "5"})
    body = r.json()
    assert set(body["value"][0]) == {"@odata.etag", "id", "displayName", "mobilePhone"}
    assert "select" not in body["@odata.nextLink"].lower()  # opaque token
    r2 = graph(body["@odata.nextLink"])
    assert set(r2.json()["value"][0]) == {"@odata.etag", "id", "displayName", "mobilePhone"}


def test_bad_select_is_400(graph: Get) -> None:
    r = graph(f"users/{ANNA}/contacts", params={"$select": "faxNumber"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "RequestBroker--ParseUri"


def test_folders_and_children(tenant: Tenant, graph: Get) -> None:
    mbx = tenant.mailbox(ANNA)
    top = graph(f"users/{ANNA}/contactFolders").json()["value"]
    assert [f["id"] for f in top] == [f.graph_id for f in mbx.contacts.children()]
    assert all(f["parentFolderId"] == mbx.contacts.graph_id for f in top)
    nested = [f for f in mbx.contacts.descendants() if f.parent is not mbx.contacts]
    parent = nested[0].parent
    assert parent is not None
    kids = graph(f"users/{ANNA}/contactFolders/{parent.graph_id}/childFolders").json()["value"]
    assert [k["displayName"] for k in kids] == [nested[0].name]
    one = graph(f"users/{ANNA}/contactFolders/{parent.graph_id}").json()
    assert one["displayName"] == parent.name
    items, _, _ = follow(graph, f"users/{ANNA}/contactFolders/{parent.graph_id}/contacts")
    assert {i["id"] for i in items} == {i.graph_id for i in parent.items.values()}


def test_delta_paging_removed_and_gone(fx: FakeExchange, tenant: Tenant, graph: Get) -> None:
    mbx = tenant.mailbox(ANNA)
    url = f"users/{ANNA}/contactFolders/{mbx.contacts.graph_id}/contacts/delta?$select={SELECT}"
    prefer = {"Prefer": "odata.maxpagesize=10"}
    r = graph(url, headers=prefer)
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=10"
    items, delta, pages = follow(graph, url, prefer)
    assert pages > 1 and delta
    assert {i["id"] for i in items} == {i.graph_id for i in mbx.contacts.items.values()
                                        if i.kind == "contact"}
    assert set(items[0]) >= {"id", "displayName", "businessPhones"}
    assert "department" not in items[0]

    contacts = [i for i in mbx.contacts.items.values() if i.kind == "contact"]
    mbx.update_contact(contacts[0].graph_id, surname="Geändert")
    mbx.delete_contact(contacts[1].ews_id)
    new = mbx.add_contact(given_name="Delta", surname="Neu")
    changed, delta2, _ = follow(graph, delta, prefer)
    assert delta2 and delta2 != delta
    by_id = {c["id"]: c for c in changed}
    assert set(by_id) == {contacts[0].graph_id, contacts[1].graph_id, new.graph_id}
    assert by_id[contacts[1].graph_id]["@removed"] == {"reason": "deleted"}
    assert by_id[contacts[0].graph_id]["surname"] == "Geändert"
    assert "department" not in by_id[new.graph_id]  # $select remembered in the token
    # nothing new -> empty page with a deltaLink
    again, _, _ = follow(graph, delta2)
    assert again == []

    fx.faults.invalidate_sync_states(ANNA)
    r = graph(delta2)
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "SyncStateNotFound"
    garbled = delta2[: delta2.index("deltatoken=") + 11] + "Zm9vYmFy"
    assert graph(garbled).status_code == 410


def test_delta_default_folder_and_page_cap(tenant: Tenant, graph: Get) -> None:
    r = graph(f"users/{ANNA}/contacts/delta", headers={"Prefer": "odata.maxpagesize=999"})
    assert r.status_code == 200
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=200"


def test_extended_properties_for_hidden_types(tenant: Tenant, graph: Get) -> None:
    mbx = tenant.mailbox(ANNA)
    c = mbx.add_contact(given_name="Fax", surname="Only",
                        numbers={"business_fax": "+49 89 1-99", "tty": "0800 123",
                                 "business": "+49 89 1-0"})
    flt = " or ".join(f"id eq 'String {tag}'" for tag in MAPI_TAGS.values())
    expand = f"singleValueExtendedProperties($filter={flt})"
    one = graph(f"users/{ANNA}/contacts/{c.graph_id}", params={"$expand": expand}).json()
    props = {p["id"].lower(): p["value"] for p in one["singleValueExtendedProperties"]}
    assert props == {"string 0x3a24": "+49 89 1-99", "string 0x3a4b": "0800 123"}
    assert one["singleValueExtendedProperties"][0]["id"] == "String 0x3a24"
    assert one["businessPhones"] == ["+49 89 1-0"]
    # Lower-case ids in the filter work too; on lists as well.
    items, _, _ = follow(graph, f"users/{ANNA}/contacts?$top=500&$expand="
                                f"singleValueExtendedProperties($filter=id eq 'string 0x3a4b')")
    hit = next(i for i in items if i["id"] == c.graph_id)
    assert hit["singleValueExtendedProperties"] == [{"id": "String 0x3a4b", "value": "0800 123"}]
    plain = graph(f"users/{ANNA}/contacts/{c.graph_id}").json()
    assert "singleValueExtendedProperties" not in plain


def test_lone_second_slot_is_compacted_but_visible_by_tag(tenant: Tenant, graph: Get) -> None:
    c = tenant.mailbox(ANNA).add_contact(given_name="Nur", surname="Zwei",
                                         numbers={"business2": "030 2", "home2": "040 2"})
    flt = " or ".join(f"id eq 'String {tag}'" for tag in VISIBLE_MAPI_TAGS.values())
    got = graph(f"users/{ANNA}/contacts/{c.graph_id}",
                params={"$expand": f"singleValueExtendedProperties($filter={flt})"}).json()
    assert got["businessPhones"] == ["030 2"] and got["homePhones"] == ["040 2"]
    assert {p["id"]: p["value"] for p in got["singleValueExtendedProperties"]} == {
        "String 0x3a1b": "030 2", "String 0x3a2f": "040 2"}


def test_graph_errors(fx: FakeExchange, tenant: Tenant, graph: Get) -> None:
    r = graph("users/nobody@contoso.de/contacts")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "ResourceNotFound"
    assert set(err["innerError"]) == {"date", "request-id", "client-request-id"}
    tenant.add_mailbox("onprem@contoso.de", rest_enabled=False)
    r = graph("users/onprem@contoso.de/contacts")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "MailboxNotEnabledForRESTAPI")
    r = graph(f"users/{ANNA}/contacts/AAMkAGI2TG93AAA=")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "ErrorItemNotFound")
    # An app with only the EWS role may not read contacts through Graph.
    ews_only = tenant.add_app(roles=["full_access_as_app"])
    s = graph_session(fx, ews_only.client_id, ews_only.secret)
    r = s.get(f"{fx.graph_url}/v1.0/users/{ANNA}/contacts", timeout=10)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "ErrorAccessDenied")
    r = requests.get(f"{fx.graph_url}/v1.0/users/{ANNA}/contacts", verify=fx.ca_file,
                     timeout=10)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_ids_shared_with_ews(tenant: Tenant, graph: Get) -> None:
    mbx = tenant.mailbox(ANNA)
    item = next(i for i in mbx.contacts.items.values() if "+" in i.ews_id or "/" in i.ews_id)
    got = graph(f"users/{ANNA}/contacts/{item.graph_id}").json()
    assert got["id"] == item.ews_id.replace("+", "-").replace("/", "_")
    assert got["changeKey"] == item.change_key
    assert got["id"].endswith("=")  # padding kept, like Outlook REST ids
