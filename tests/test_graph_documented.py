"""Microsoft's own Graph examples, verbatim, through the real Graph source into the phonebook.

The other Graph tests feed the source JSON that our fake renders from our own idea of a
contact. Here the fake serves the response bodies of Microsoft's Graph v1.0 reference as
written (tests/data/graph-docs/README.md names page and commit of each), over real HTTPS,
and we check what lands in the phonebook: names, company, e-mails, every number as written
and as E.164, and that nothing else moves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ucware_contactsync.model import Entry
from ucware_contactsync.sources.graph.mapping import SELECT
from ucware_contactsync.testing import FakeExchange, Tenant
from ucware_contactsync.testing.clients import graph_session

DOCS = Path(__file__).parent / "data" / "graph-docs"
TENANT_ID = "0c9f8a3e-5b1d-4e7a-9c2f-1d6e8b4a7f30"
ANNA = "anna.berg@contoso.de"


def doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / name).read_text(encoding="utf-8"))
    return data


ALEX = doc("contact-get.json")  # GET /me/contacts/{id}: no phone number at all
GARTH = doc("contact-update.json")  # PATCH response: company, job, one business phone
LISTED = doc("user-list-contacts.json")["value"][0]  # placeholders only, no id
DELTA_PAGE = doc("contact-delta.json")
# POST /me/contacts: what the client sent plus what the server answered (id "id-value").
PAVEL = {**doc("user-post-contacts.request.json"), **doc("user-post-contacts.response.json")}

# What `phonebook show --json` must hold for them. Numbers: libphonenumber holds both
# documented numbers valid. 555-0100..0199 are the NANP's numbers reserved for fiction, but
# they are real-shaped numbers of real area codes (918 Tulsa, 732 New Jersey), unlike the
# bare "+1-555-0123" that phone.py's rules name as merely possible. So by phone.py ("an E.164
# is stored only for a number libphonenumber holds valid") they get one, parsed in
# default_region DE; the "+1" makes the region irrelevant.
GARTH_ENTRY = {
    "display_name": "Garth Fort", "given_name": "Garth", "surname": "Fort",
    "company": "Contoso, Inc.", "department": "Sales & Marketing",
    "job_title": "Web Marketing Manager",
    # emailAddresses [{"name": "Garth", "address": ...}]: the address, never the name
    "emails": ["garth@a830edad9050849NDA1.onmicrosoft.com"],
    "numbers": [{"type": "business", "number": "+1 918 555 0101", "e164": "+19185550101"}],
    "source_id": "AAMkAGI2THk0AAA=",
}
PAVEL_ENTRY = {
    "display_name": "Pavel Bansky", "given_name": "Pavel", "surname": "Bansky",
    "company": "", "department": "", "job_title": "",
    # emailAddresses [{"address": ..., "name": "Pavel Bansky"}]: again the address
    "emails": ["pavelb@fabrikam.onmicrosoft.com"],
    "numbers": [{"type": "business", "number": "+1 732 555 0102", "e164": "+17325550102"}],
    "source_id": "id-value",
}
HAND = {"display_name": "Hausmeister", "given_name": "", "surname": "", "company": "",
        "department": "", "job_title": "", "emails": [],
        "numbers": [{"type": "mobile", "number": "0170 9999999", "e164": "+491709999999"}],
        "source_id": None}


@pytest.fixture
def tenant() -> Tenant:
    t = Tenant(tenant_id=TENANT_ID, seed=5)
    t.add_app(roles=["Contacts.Read"])
    mbx = t.add_mailbox(ANNA)
    mbx.add_graph_contact(ALEX)
    mbx.add_graph_contact(GARTH)
    mbx.add_graph_contact(LISTED)
    # The delta example is a page of /me/contactFolders/{id}/contacts/delta: a subfolder.
    mbx.add_graph_contact(DELTA_PAGE["value"][0], folder=mbx.add_folder("Delta"))
    return t


def entries(book: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries, sorted by display name."""
    return sorted(book["entries"], key=lambda e: e["display_name"])


def last_written(database) -> Any:  # type: ignore[no-untyped-def]
    """(newest updated_at, number of entries): equal before and after = nothing written."""
    with database.session() as s:
        return s.scalar(select(func.max(Entry.updated_at))), s.scalar(
            select(func.count()).select_from(Entry))


def test_documented_contacts_land_in_the_phonebook(office_factory, tenant, database):
    office = office_factory(tenant)
    mbx = tenant.mailbox(ANNA)
    assert office.cli("phonebook", "add", "--user", ANNA, "--name", "Hausmeister",
                      "--number", "mobile:0170 9999999").code == 0

    # 1. Full read. Alex Wilber (contact-get.md) and the two placeholder contacts of the list
    # and delta pages have no number: a phonebook is for calling, they are left out
    # (phonebook.py diff_read). Garth Fort comes in with everything we keep.
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert f"{ANNA}: 1 added, 0 updated, 0 removed, 0 unchanged (full, graph)" in r.err
    book = office.book(ANNA)
    assert book["source"] == "office365"
    assert entries(book) == [GARTH_ENTRY, HAND]

    # 2. Nothing changed: nothing written.
    before = last_written(database)
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert f"{ANNA}: 0 added, 0 updated, 0 removed, 1 unchanged (incremental, graph)" in r.err
    assert last_written(database) == before
    assert entries(office.book(ANNA)) == [GARTH_ENTRY, HAND]

    # 3. The documented POST /me/contacts happens in Outlook: the delta names the new id and
    # the source fetches the item itself ($select, $expand) as Graph serves it.
    mbx.add_graph_contact(PAVEL)
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert f"{ANNA}: 1 added, 0 updated, 0 removed, 1 unchanged (incremental, graph)" in r.err
    assert entries(office.book(ANNA)) == [GARTH_ENTRY, HAND, PAVEL_ENTRY]
    fetched = [q.path for q in office.fx.requests if q.operation == "contact"]
    assert [p.rsplit("/", 1)[1] for p in fetched] == ["id-value"]
    assert not [q for q in office.fx.requests if q.operation == "contacts"]  # no listing

    # 4. Garth Fort is deleted in Outlook: the delta's @removed takes his entry out; Pavel
    # and the hand-typed entry stay as they are.
    mbx.delete_contact(GARTH["id"])
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert f"{ANNA}: 0 added, 0 updated, 1 removed, 1 unchanged (incremental, graph)" in r.err
    assert entries(office.book(ANNA)) == [HAND, PAVEL_ENTRY]


def test_fake_serves_the_documents_as_written(tenant):
    """The premise of the test above: what the source got is Microsoft's JSON, not ours."""
    with FakeExchange(tenant) as fx:
        s = graph_session(fx)
        base = f"{fx.graph_url}/v1.0/users/{ANNA}/contacts"

        def get(url: str, **params: str) -> dict[str, Any]:
            r = s.get(url, params=params, timeout=10)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        # A single GET without $select: the documented body (its @odata.context is about the
        # response, not the contact, and the fake does not send one for single items).
        got = get(f"{base}/{ALEX['id']}")
        assert got == {k: v for k, v in ALEX.items() if k != "@odata.context"}
        assert list(got) == [k for k in ALEX if k != "@odata.context"]  # order too
        # What the source asks for: the selected keys the document has, values untouched.
        got = get(f"{base}/{GARTH['id']}", **{"$select": SELECT})
        assert got == {"@odata.etag": f'W/"{GARTH["changeKey"]}"',
                       **{k: GARTH[k] for k in SELECT.split(",")}}
        # A document without id (the list page's) gets the id Graph always returns.
        listed = get(base, **{"$select": "displayName,birthday"})["value"]
        assert [c["birthday"] for c in listed] == [None, "1974-07-22", "datetime-value"]
        assert all(c["id"] for c in listed)

        # Removed items: the fake's contact entry has the shape Microsoft documents for
        # removed Outlook items (delta-query-messages.md), with the contact's type.
        page = get(f"{base}/delta", **{"$select": "id"})
        while "@odata.deltaLink" not in page:
            page = get(page["@odata.nextLink"])
        tenant.mailbox(ANNA).delete_contact(GARTH["id"])
        removed = get(page["@odata.deltaLink"])["value"]
        documented = doc("delta-query-messages.next-round.json")["value"][0]
        assert removed == [{**documented, "@odata.type": "#microsoft.graph.contact",
                            "id": GARTH["id"]}]
        assert list(removed[0]) == list(documented)


def test_fake_contact_properties_are_the_documented_ones():
    """The source selects only documented properties; the fake knows exactly those
    (contact.md's JSON representation; ``photo`` is a relationship, not a property)."""
    from ucware_contactsync.testing.graph import CONTACT_PROPS

    documented = set(doc("contact-resource.json")) - {"photo"}
    assert set(SELECT.split(",")) <= documented
    assert set(CONTACT_PROPS) == documented
