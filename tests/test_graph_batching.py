"""GraphSource's JSON batching and folder delta against the fake Graph (nothing mocked)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ucware_contactsync.settings import Settings
from ucware_contactsync.sources.base import Kind, SourceError
from ucware_contactsync.sources.graph import GraphSource
from ucware_contactsync.sources.graph.folders import HIERARCHY
from ucware_contactsync.testing import FakeExchange, Tenant, generate_tenant

CLIENT_ID = "66666666-7777-8888-9999-000000000000"
SECRET = "s3cr3t~value"


@pytest.fixture
def tenant() -> Tenant:
    """Six mailboxes; the generator gives each two subfolders, one with a nested child."""
    return generate_tenant(seed=3, mailboxes=6, contacts_per_mailbox=20, client_id=CLIENT_ID,
                           secret=SECRET)


@pytest.fixture
def fx(tenant: Tenant) -> Iterator[FakeExchange]:
    with FakeExchange(tenant) as server:
        yield server


@pytest.fixture
def source(fx: FakeExchange) -> Iterator[GraphSource]:
    s = Settings(tenant_id=fx.tenant.tenant_id, client_id=CLIENT_ID, client_secret=SECRET,
                 login_url=fx.login_url, graph_url=fx.graph_url, ca_bundle=fx.ca_file)
    src = GraphSource(s)
    src.backoff = 0.05
    yield src
    src.close()


def round_trips(fx: FakeExchange) -> list:  # type: ignore[type-arg]
    return [r for r in fx.requests_for(api="graph") if r.round_trip]


def ids(tenant: Tenant, smtp: str) -> set[str]:
    return {i.graph_id for i in tenant.mailbox(smtp).all_items() if i.kind == "contact"}


def test_unchanged_mailboxes_share_batches(fx: FakeExchange, tenant: Tenant,
                                           source: GraphSource) -> None:
    boxes = sorted(tenant.mailboxes)
    states = {m: source.read(m, None).states for m in boxes}
    fx.clear_requests()
    source.prefetch([(m, states[m]) for m in boxes])
    reads = {m: source.read(m, states[m]) for m in boxes}

    for m in boxes:
        folders = len(tenant.mailbox(m).contact_folders())
        assert (reads[m].contacts, reads[m].deleted) == ([], [])
        # One request for the folder hierarchy and one per contact folder: 1 + k.
        assert reads[m].requests == len(fx.requests_for(api="graph", mailbox=m)) == folders + 1
    # 6 mailboxes x 5 requests = 30 sub-requests, at most 20 a batch and 4 of a mailbox in
    # flight: 20 (4 each of five mailboxes) + 4 (the sixth) side by side, then the last 6.
    sizes = sorted((len([s for s in fx.requests_for(api="graph") if s.batch == r.request_id])
                    or 1 for r in round_trips(fx)), reverse=True)  # a lone GET goes plain
    assert sizes[0] == 20 and sum(sizes) == 30 and len(sizes) <= 4, sizes


def test_read_without_prefetch_still_works_and_prefetch_of_other_states_is_ignored(
        fx: FakeExchange, tenant: Tenant, source: GraphSource) -> None:
    m = sorted(tenant.mailboxes)[0]
    first = source.read(m, None)
    source.prefetch([(m, first.states)])
    tenant.mailbox(m).add_contact(given_name="Neu", surname="Nachher")
    second = source.read(m, first.states)  # uses what was sent ahead
    assert [c.surname for c in second.contacts] == ["Nachher"]
    source.prefetch([(m, first.states)])
    third = source.read(m, second.states)  # other states: the prefetched answers are dropped
    assert (third.contacts, third.deleted) == ([], [])


def test_batch_with_throttled_and_missing_sub_requests(fx: FakeExchange, tenant: Tenant,
                                                       source: GraphSource) -> None:
    """Changed items in one batch: some answered 429 with their own Retry-After, some 404
    (deleted after the delta named them). Only the throttled ones are repeated, after the
    wait; the missing ones are neither taken nor deleted, and their folder keeps its delta
    link, so the next run reads the truth (here: their deletion)."""
    m = sorted(tenant.mailboxes)[0]
    mbx = tenant.mailbox(m)
    first = source.read(m, None)
    added = [mbx.add_contact(given_name=f"N{n}", surname="Batch", numbers={"car": f"0170 {n}"})
             for n in range(8)]
    gone = added[:2]
    # The delta reports all 8 as changed; delete two just after the delta round.
    original = source._changed_items

    def delete_then_fetch(call, changed):  # type: ignore[no-untyped-def]
        for item in gone:
            mbx.delete_contact(item.ews_id)
        fx.faults.throttle_graph_subrequests(count=2, retry_after_s=1, every=3)
        return (yield from original(call, changed))

    source._changed_items = delete_then_fetch  # type: ignore[method-assign]
    fx.clear_requests()
    started = time.monotonic()
    second = source.read(m, first.states)
    waited = time.monotonic() - started

    assert {c.source_id for c in second.contacts} == {i.graph_id for i in added[2:]}
    assert second.deleted == []
    assert second.states["contacts"] == first.states["contacts"]
    gets = [r for r in fx.requests_for(api="graph", mailbox=m) if r.operation == "contact"]
    assert sorted(r.status for r in gets) == [200] * 6 + [404] * 2 + [429] * 2
    throttled = [r for r in gets if r.status == 429]
    assert all(any(g.url == t.url and g.status == 200 and g.started - t.started >= 1.0
                   for g in gets) for t in throttled)  # repeated after Retry-After
    assert len({r.url for r in gets}) == 8  # nothing else repeated
    assert waited >= 1.0
    source._changed_items = original  # type: ignore[method-assign]
    third = source.read(m, second.states)
    # From the old link: the six again; the two were made and deleted after it, so there is
    # nothing to report (nor to delete) for them.
    assert {c.source_id for c in third.contacts} == {i.graph_id for i in added[2:]}
    assert third.deleted == []


def test_410_on_the_folder_delta_link_lists_the_folders_again(
        fx: FakeExchange, tenant: Tenant, source: GraphSource) -> None:
    m = sorted(tenant.mailboxes)[0]
    first = source.read(m, None)
    broken = dict(first.states)
    link = broken[HIERARCHY]
    broken[HIERARCHY] = link.replace("deltatoken=", "deltatoken=x")
    tenant.mailbox(m).add_contact(given_name="Neu", surname="Danach")
    fx.clear_requests()
    second = source.read(m, broken)

    assert not second.full  # the contacts' delta links still hold: no full read
    assert [c.surname for c in second.contacts] == ["Danach"]
    ops = [(r.operation, r.status) for r in fx.requests_for(api="graph", mailbox=m)
           if r.operation == "folderDelta"]
    assert ops == [("folderDelta", 410), ("folderDelta", 200)]
    assert second.states[HIERARCHY] != broken[HIERARCHY]


def test_states_without_folder_delta_continue_incrementally(
        fx: FakeExchange, tenant: Tenant, source: GraphSource) -> None:
    """States written before the folder delta existed: one folder round, no full read."""
    m = sorted(tenant.mailboxes)[0]
    old = {k: v for k, v in source.read(m, None).states.items() if k != HIERARCHY}
    second = source.read(m, old)
    assert not second.full and (second.contacts, second.deleted) == ([], [])
    assert HIERARCHY in second.states


def test_removed_folder_still_needs_a_full_read(fx: FakeExchange, tenant: Tenant,
                                                source: GraphSource) -> None:
    m = sorted(tenant.mailboxes)[0]
    mbx = tenant.mailbox(m)
    first = source.read(m, None)
    mbx.delete_folder(mbx.contacts.children()[0])
    with pytest.raises(SourceError) as err:
        source.read(m, first.states)
    assert err.value.kind is Kind.STATE_INVALID
    assert {c.source_id for c in source.read(m, None).contacts} == ids(tenant, m)


def test_a_graph_run_never_imports_exchangelib(  # type: ignore[no-untyped-def]
        office_factory, db_url: str) -> None:
    """Start-up: the sync command with api=graph, as cron starts it, in a process of its own."""
    tenant = generate_tenant(seed=2, mailboxes=2, contacts_per_mailbox=5,
                             roles=("Contacts.Read",))
    office_factory(tenant, api="graph")
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "ucware_contactsync",
                        "--db", db_url, "sync"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "CONTACTSYNC_SYSLOG": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "ucware_contactsync.sources.graph.source" in imported
    assert not [m for m in imported if m.split(".")[0] == "exchangelib"]


@settings(max_examples=300, deadline=None)
@given(host=st.sampled_from(["graph.microsoft.com", "Graph.Microsoft.COM", "127.0.0.1:8443",
                             "graph.microsoft.us:443"]),
       path=st.text(st.characters(codec="utf-8", exclude_characters="?#"), max_size=30),
       query=st.sampled_from(["", "$top=5", "a=%20b"]),
       params=st.dictionaries(st.sampled_from(["$select", "$expand", "$top", "$filter", "x"]),
                              st.text(st.characters(codec="utf-8"), max_size=40),
                              min_size=1))
def test_prepared_urls_are_spelled_as_requests_spells_them(host: str, path: str, query: str,
                                                           params: dict[str, str]) -> None:
    """``client.prepared`` builds the URL of a request without building the request; it
    must give what requests' own ``prepare()`` gives, byte for byte (sub-requests of a
    $batch and plain GETs are one spelling)."""
    import requests

    from ucware_contactsync.sources.graph.client import prepared
    from ucware_contactsync.sources.graph.mapping import EXPAND, SELECT

    url = f"https://{host}/v1.0/users/{quote(path)}/contacts" + (f"?{query}" if query else "")
    for p in (params, {"$select": SELECT, "$expand": EXPAND, "$top": "100"}):
        assert prepared(url, p) == requests.Request("GET", url, params=p).prepare().url
