"""A tenant moves from EWS to Graph (Contacts.Read granted): same phonebook, no duplicates."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from ucware_contactsync.model import Entry, Number
from ucware_contactsync.testing import generate_tenant, mutate


def test_ews_then_graph_identical_phonebook(office_factory, database):
    tenant = generate_tenant(seed=31, mailboxes=2, contacts_per_mailbox=60,
                             roles=("full_access_as_app",))
    office = office_factory(tenant)
    cli = office.cli
    assert cli("phonebook", "add", "--user", "anna.berg@contoso.de", "--name", "Empfang",
               "--number", "business:089 1234-0").code == 0
    r = office.sync("-v")
    assert r.code == 0 and "(full, ews)" in r.err
    before = office.books()
    with database.session() as s:
        rows_before = (s.scalar(select(func.count()).select_from(Entry)),
                       s.scalar(select(func.count()).select_from(Number)))
        stamps = dict(s.execute(select(Entry.id, Entry.updated_at)).all())

    office.app.roles = ("full_access_as_app", "Contacts.Read")  # admin grants Graph
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert re.search(r"using Microsoft Graph: api=auto and the app holds Contacts.Read", r.err)
    # a first Graph run is a full read, and it changes nothing at all
    assert len(re.findall(r"^\S+@\S+: 0 added, 0 updated, 0 removed", r.err, re.M)) == 2, r.err
    assert not [q for q in office.fx.requests if q.api == "ews"]
    assert office.books() == before
    with database.session() as s:
        assert (s.scalar(select(func.count()).select_from(Entry)),
                s.scalar(select(func.count()).select_from(Number))) == rows_before
        assert dict(s.execute(select(Entry.id, Entry.updated_at)).all()) == stamps

    # and from now on Graph keeps it current incrementally
    mutate(tenant, seed=4, adds=2, updates=2, deletes=1)
    r = office.sync("-v")
    assert r.code == 0 and "(incremental, graph)" in r.err
    hand = [e for e in office.book("anna.berg@contoso.de")["entries"] if e["source_id"] is None]
    assert [e["display_name"] for e in hand] == ["Empfang"]


def test_ids_reconciled_by_content_when_they_do_not_match(office_factory, database):
    """Should an id not translate, identical contacts are relinked instead of re-added."""
    tenant = generate_tenant(seed=32, mailboxes=1, contacts_per_mailbox=30,
                             roles=("full_access_as_app",))
    office = office_factory(tenant)
    assert office.sync().code == 0
    with database.session() as s:
        ids = dict(s.execute(select(Entry.id, Entry.source_id)).all())
        # pretend the stored ids came in a foreign spelling
        for entry in s.scalars(select(Entry)):
            entry.source_id = "legacy:" + entry.source_id
    before = [{**e, "source_id": None} for e in office.book("anna.berg@contoso.de")["entries"]]
    r = office.sync("--full", "-v")
    assert r.code == 0
    assert re.search(r"0 added, \d+ updated, 0 removed", r.err)
    with database.session() as s:
        assert dict(s.execute(select(Entry.id, Entry.source_id)).all()) == ids
    after = [{**e, "source_id": None} for e in office.book("anna.berg@contoso.de")["entries"]]
    assert after == before
