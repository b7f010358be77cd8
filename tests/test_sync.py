"""The documented `contactsync -v`, over EWS (exchangelib) and over Microsoft Graph, against the
fake Exchange Online over HTTPS, into SQLite, MariaDB and PostgreSQL.

The app's roles decide the API (api=auto): full_access_as_app only -> EWS, Contacts.Read ->
Graph; every scenario runs through both."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from ucware_contactsync.contact import NUMBER_TYPES
from ucware_contactsync.testing import generate_tenant, mutate

EWS_ONLY = ("full_access_as_app",)
ROLES = {"ews": EWS_ONLY, "graph": ("Contacts.Read",), "onprem": EWS_ONLY}
WIRE = {"ews": "ews", "graph": "graph", "onprem": "ews"}  # the API the run reports
# The EWS scenarios also run against an on-premises Exchange: office365=false, a service
# account, a real NTLM handshake (tests/test_onprem_ntlm.py has the on-premises specifics).
WITH_ONPREM = pytest.mark.parametrize("api", ["ews", "graph", "onprem"], indirect=True)


@pytest.fixture(params=["ews", "graph"])
def api(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def office_factory(office_factory, request):  # type: ignore[no-untyped-def]
    on_premises = "api" in request.fixturenames and request.getfixturevalue("api") == "onprem"
    return lambda tenant, **kw: office_factory(tenant, on_premises=on_premises, **kw)


def every_type_numbers() -> dict[str, str]:
    """One number per EWS label, in the formats people type."""
    written = ["+49 89 12345-0", "030 1234-567", "0171 1234567", "089 / 12 34 56",
               "(089) 123457", "0049 30 1234568", "+1 (212) 555-0100", "+44 20 7946 0958",
               "+49 (0)40 123456", "0221-123456", "040 1234 5678", "0621 12345-67",
               "+43 1 234567", "+41 44 123 45 67", "06221/123456", "0711 123456",
               "n/a", "0351 1234567", "+49 89 12345-99"]
    return dict(zip(NUMBER_TYPES, written, strict=True))


def expected_entries(mbx) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """source_id -> (display_name, numbers as written by type) of every callable contact."""
    out = {}
    for item in mbx.all_items():
        if item.kind != "contact":
            continue
        nums = {t: n.strip() for t, n in item.numbers.items() if n and n.strip()}
        if nums:
            out[item.graph_id] = {"display_name": item.display_name, "numbers": nums}
    return out


def actual_entries(book: dict) -> dict[str, dict]:
    return {e["source_id"]: {"display_name": e["display_name"],
                             "numbers": {n["type"]: n["number"] for n in e["numbers"]}}
            for e in book["entries"] if e["source_id"]}


@pytest.fixture
def small_tenant(api):  # type: ignore[no-untyped-def]
    return generate_tenant(seed=11, mailboxes=3, contacts_per_mailbox=40, roles=ROLES[api])


@WITH_ONPREM
def test_first_sync_equals_mailbox(office_factory, small_tenant, api):
    mbx = small_tenant.mailbox("anna.berg@contoso.de")
    special = mbx.add_contact(given_name="Jürgen", surname="Weiß-Öztürk", company="Bäckerei Größl",
                              emails=["jürgen@bäckerei.de"], numbers=every_type_numbers())
    office = office_factory(small_tenant)
    r = office.sync("-v")
    assert r.code == 0, r.err
    # auto chose by the roles; EWS comes with the sunset warning
    assert ("EWS in Exchange Online" in r.err) == (api == "ews")
    for email in small_tenant.mailboxes:
        book = office.book(email)
        assert book["source"] == "office365"
        assert actual_entries(book) == expected_entries(small_tenant.mailbox(email))
    entry = next(e for e in office.book("anna.berg@contoso.de")["entries"]
                 if e["source_id"] == special.graph_id)
    assert entry["display_name"] == "Jürgen Weiß-Öztürk" and entry["company"] == "Bäckerei Größl"
    assert entry["emails"] == ["jürgen@bäckerei.de"]
    assert [n["type"] for n in entry["numbers"]] == list(NUMBER_TYPES)
    e164 = {n["type"]: n["e164"] for n in entry["numbers"]}
    assert e164["business"] == "+4989123450"        # "+49 89 12345-0"
    assert e164["business2"] == "+49301234567"      # "030 1234-567"
    assert e164["home"] == "+4989123456"            # "089 / 12 34 56"
    assert e164["telex"] is None                    # "n/a" kept as written, no E.164
    assert sum(v is not None for v in e164.values()) == 18
    # per-user lines and the summary
    assert re.search(r"anna\.berg@contoso\.de: \d+ added, 0 updated, 0 removed", r.err)
    assert "3 users synced, 0 failed" in r.err


@WITH_ONPREM
def test_incremental_writes_exactly_the_changes(office_factory, small_tenant, api):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    before = {e: actual_entries(office.book(e)) for e in small_tenant.mailboxes}
    change = mutate(small_tenant, seed=5, adds=3, updates=3, deletes=2)
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    for email in small_tenant.mailboxes:
        after = actual_entries(office.book(email))
        assert after == expected_entries(small_tenant.mailbox(email))
        # nothing else moved
        untouched = {k: v for k, v in before[email].items()
                     if k not in {i.graph_id for i in change.updated[email]}}
        for k, v in untouched.items():
            if k in after:
                assert after[k] == v
    if WIRE[api] == "ews":
        syncs = [q for q in office.fx.requests if q.operation == "SyncFolderItems"]
        assert syncs, "no SyncFolderItems sent"
        # every SyncFolderItems carried the stored state: nothing was read from scratch
        assert all(re.search(r"<m:SyncState>[^<]+</m:SyncState>", q.body) for q in syncs)
        assert not [q for q in office.fx.requests if q.operation in ("FindItem", "GetItem")]
    else:
        deltas = [q for q in office.fx.requests if q.operation == "delta"]
        assert deltas and all("$deltatoken" in q.query or "deltatoken" in q.query.lower()
                              for q in deltas), [q.url for q in deltas]
        # no listing of whole folders: only the changed items were fetched
        assert not [q for q in office.fx.requests if q.operation == "contacts"]


def test_unchanged_mailbox_writes_nothing(office_factory, small_tenant, database):
    from sqlalchemy import func, select

    from ucware_contactsync.model import Entry

    office = office_factory(small_tenant)
    assert office.sync().code == 0
    with database.session() as s:
        stamp = s.scalar(select(func.max(Entry.updated_at)))
    r = office.sync("-v")
    assert r.code == 0
    assert "0 added, 0 updated, 0 removed" in r.err
    with database.session() as s:
        assert s.scalar(select(func.max(Entry.updated_at))) == stamp


def test_hand_typed_entries_survive_every_run(office_factory, small_tenant):
    office = office_factory(small_tenant)
    cli = office.cli
    assert cli("phonebook", "add", "--user", "anna.berg@contoso.de", "--name", "Hausmeister",
               "--number", "mobile:0170 9999999").code == 0
    assert office.sync().code == 0
    mutate(small_tenant, seed=3, adds=2, updates=2, deletes=2)
    assert office.sync("--full").code == 0
    assert office.sync().code == 0
    hand = [e for e in office.book("anna.berg@contoso.de")["entries"] if e["source_id"] is None]
    assert [e["display_name"] for e in hand] == ["Hausmeister"]
    assert hand[0]["numbers"][0]["e164"] == "+491709999999"


@pytest.mark.parametrize("kind", ["missing", "denied", "http500"])
@WITH_ONPREM
def test_one_failing_mailbox_leaves_its_phonebook_and_others_sync(office_factory, small_tenant,
                                                                   kind, api):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    bad, good = "juergen.schaefer@contoso.de", "anna.berg@contoso.de"
    before_bad = office.book(bad)
    mutate(small_tenant, seed=9, adds=2, updates=1, deletes=1)
    office.fx.faults.fail_mailbox(bad, kind)
    r = office.sync()
    assert r.code == 1, r.err
    assert office.book(bad) == before_bad
    assert actual_entries(office.book(good)) == expected_entries(small_tenant.mailbox(good))
    line = [ln for ln in r.err.splitlines() if bad in ln]
    assert line and "FAILED" in line[0]
    denied = {"ews": "full_access_as_app", "graph": "Contacts.Read",
              "onprem": "ApplicationImpersonation"}[api]
    hint = {"missing": "primary SMTP", "denied": denied, "http500": "retries"}
    assert hint[kind] in line[0]
    assert "Traceback" not in r.err


@pytest.mark.parametrize(("fault", "code"), [("wrong", "AADSTS7000215"),
                                             ("expired", "AADSTS7000222")])
def test_bad_secret_exit_2_explained_nothing_changed(office_factory, small_tenant, fault, code):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    before = office.books()
    mutate(small_tenant, seed=2, adds=2, updates=2, deletes=2)
    if fault == "wrong":
        assert office.cli("config", "set", "client_secret", "not-the-secret-123").code == 0
    else:
        office.app.secret_expired = True
    r = office.sync()
    assert r.code == 2
    lines = [ln for ln in r.err.strip().splitlines() if ln]
    assert len(lines) == 1 and code in lines[0] and "client_secret" in lines[0]
    assert "not-the-secret-123" not in r.err and office.app.secret not in r.err
    assert office.books() == before


@WITH_ONPREM
def test_throttling_ridden_out(office_factory, small_tenant, api):
    office = office_factory(small_tenant)
    if WIRE[api] == "ews":
        office.fx.faults.throttle_ews(count=3, backoff_ms=300)
        office.fx.faults.throttle_ews_http429(count=2, retry_after=1)
    else:
        office.fx.faults.throttle_graph(count=3, retry_after_s=1)
        office.fx.faults.throttle_graph(count=2, retry_after_s=1, status=503)
    started = time.monotonic()
    r = office.sync()
    assert r.code == 0, r.err
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    throttled = [q for q in office.fx.requests if q.fault]
    assert len(throttled) == (5 if WIRE[api] == "ews" else 2)
    for email in small_tenant.mailboxes:
        assert actual_entries(office.book(email)) == expected_entries(small_tenant.mailbox(email))


def test_token_expiry_mid_run(office_factory, api):
    tenant = generate_tenant(seed=4, mailboxes=2, contacts_per_mailbox=1200, roles=ROLES[api])
    office = office_factory(tenant)
    office.fx.faults.token_lifetime(4)
    office.fx.faults.slow(0.3)
    office.cli("config", "set", "max_workers", "1")
    r = office.sync()
    assert r.code == 0, r.err
    tokens = [q for q in office.fx.requests if q.api == "token" and q.status == 200]
    assert len(tokens) >= 2  # renewed during the run
    assert not [q for q in office.fx.requests if q.api == "token" and q.status != 200]
    for email in tenant.mailboxes:
        assert actual_entries(office.book(email)) == expected_entries(tenant.mailbox(email))


@WITH_ONPREM
def test_dropped_connection_retried(office_factory, small_tenant, api):
    office = office_factory(small_tenant)
    office.fx.faults.drop_connection(2, api=WIRE[api])
    r = office.sync()
    assert r.code == 0, r.err
    assert len([q for q in office.fx.requests if q.fault]) == 2


def test_failure_mid_write_leaves_phonebook_exactly_as_before(office_factory, small_tenant,
                                                              monkeypatch):
    from ucware_contactsync import phonebook

    office = office_factory(small_tenant)
    assert office.sync().code == 0
    before = office.books()
    mutate(small_tenant, seed=21, adds=4, updates=4, deletes=3)
    real = phonebook._insert_numbers
    calls = {"n": 0}

    def crash_after_first(session, pairs, *args, **kwargs):  # type: ignore[no-untyped-def]
        rows = real(session, pairs, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full (simulated)")
        return rows

    monkeypatch.setattr(phonebook, "_insert_numbers", crash_after_first)
    r = office.sync()
    assert r.code == 1
    assert "unchanged" in r.err and "disk full" in r.err
    after = office.books()
    failed = [ln.split(":")[0] for ln in r.err.splitlines() if "FAILED" in ln]
    assert len(failed) == 1
    for b_before, b_after in zip(before, after, strict=True):
        if b_before["owner"] == failed[0]:
            assert b_after == b_before
    # ... and its history holds nothing of the rolled-back write: only the first run
    hist = office.cli("history", "--user", failed[0], "--json")
    assert [r["command"] for r in json.loads(hist.out)] == ["sync"]
    monkeypatch.undo()
    assert office.sync().code == 0  # the next run catches up from the old state
    for email in small_tenant.mailboxes:
        assert actual_entries(office.book(email)) == expected_entries(small_tenant.mailbox(email))


def test_two_concurrent_runs_one_exits_75(office_factory, small_tenant, monkeypatch, tmp_path):
    monkeypatch.setenv("CONTACTSYNC_LOCK_DIR", str(tmp_path))
    office = office_factory(small_tenant)
    office.fx.faults.slow(0.3)
    first: dict = {}
    t = threading.Thread(target=lambda: first.update(r=office.sync()))
    t.start()
    time.sleep(0.8)
    second = office.sync()
    t.join(60)
    assert first["r"].code == 0, first["r"].err
    assert second.code == 75
    assert "another sync is running" in second.err
    office.fx.faults.reset()
    assert office.sync().code == 0  # the lock is free again


def test_mass_deletion_guard(office_factory, small_tenant):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    email = "anna.berg@contoso.de"
    mbx = small_tenant.mailbox(email)
    count = len(office.book(email)["entries"])
    for item in list(mbx.all_items()):
        if item.kind == "contact":
            mbx.delete_contact(item.ews_id)
    r = office.sync("--full")
    assert r.code == 1 and "--force" in r.err
    assert len(office.book(email)["entries"]) == count
    r = office.sync("--full", "--force", "--user", email)
    assert r.code == 0, r.err
    assert office.book(email)["entries"] == []


def test_dry_run_writes_nothing(office_factory, small_tenant):
    office = office_factory(small_tenant)
    r = office.sync("--dry-run", "-v")
    assert r.code == 0, r.err
    assert "would be:" in r.err and re.search(r"^anna\.berg@contoso\.de: \+ ", r.err, re.M)
    assert "dry run via" in r.err and "nothing written" in r.err
    assert office.books() == []


@WITH_ONPREM
def test_invalid_state_resyncs_that_user_only(office_factory, small_tenant, api):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    mutate(small_tenant, seed=8, adds=1, updates=1, deletes=1)
    office.fx.faults.invalidate_sync_states("sophie.martin@contoso.de")
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert re.search(rf"sophie\.martin@contoso\.de: .*\(full, {WIRE[api]}\)", r.err)
    assert re.search(rf"anna\.berg@contoso\.de: .*\(incremental, {WIRE[api]}\)", r.err)
    for email in small_tenant.mailboxes:
        assert actual_entries(office.book(email)) == expected_entries(small_tenant.mailbox(email))
    if WIRE[api] == "ews":
        fresh = [q for q in office.fx.requests if q.operation == "SyncFolderItems"
                 and "<m:SyncState>" not in q.body]
    else:
        fresh = [q for q in office.fx.requests if q.operation == "contacts"]
    assert fresh and {q.mailbox for q in fresh} == {"sophie.martin@contoso.de"}


@WITH_ONPREM
def test_full_flag_rereads_everyone(office_factory, small_tenant, api):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    r = office.sync("--full", "-v")
    assert r.code == 0
    assert r.err.count(f"(full, {WIRE[api]})") == 3


def test_user_selection_and_reporting(office_factory, small_tenant):
    office = office_factory(small_tenant)
    cli = office.cli
    assert cli("users", "add", "nomailbox@contoso.de").code == 0
    r = office.sync("--user", "ANNA.BERG@contoso.de", "-v")
    assert r.code == 0, r.err
    assert [b["owner"] for b in office.books()] == ["anna.berg@contoso.de"]
    r = office.sync("--user", "nomailbox@contoso.de")
    assert r.code == 1 and "not in a group with ews_synccontacts=true" in r.err
    cli("groups", "add-member", "Kontakte", "nomailbox@contoso.de")
    r = office.sync("--user", "nomailbox@contoso.de")
    assert r.code == 1 and "primary SMTP" in r.err


def test_token_endpoint_down_fails_cleanly(office_factory, small_tenant):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    before = office.books()
    mutate(small_tenant, seed=12, adds=2, updates=2, deletes=2)
    office.fx.faults.token_endpoint_down(True)
    r = office.sync()
    assert r.code == 1, r.err
    assert "token endpoint" in r.err and "next run retries" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert office.books() == before


def test_token_endpoint_down_mid_run_never_hangs(office_factory, api):
    """Tokens expire during the run and the endpoint is gone: users fail, the run ends."""
    tenant = generate_tenant(seed=14, mailboxes=3, contacts_per_mailbox=700, roles=ROLES[api])
    office = office_factory(tenant)
    office.fx.faults.token_lifetime(4)
    office.fx.faults.slow(0.25)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(r=office.sync()), daemon=True)
    t.start()
    time.sleep(1.0)  # first tokens issued, reads under way
    office.fx.faults.token_endpoint_down(True)
    t.join(90)
    assert not t.is_alive(), "the sync hung after the token endpoint failed"
    r = result["r"]
    assert r.code in (0, 1), r.err
    assert "Traceback" not in r.err
    office.fx.faults.reset()
    r = office.sync()
    assert r.code == 0, r.err  # and the next run recovers
    for email in tenant.mailboxes:
        assert actual_entries(office.book(email)) == expected_entries(tenant.mailbox(email))


def test_new_phonebook_title_gets_a_full_read(office_factory, small_tenant, api):
    office = office_factory(small_tenant)
    assert office.sync().code == 0
    assert office.cli("config", "set", "phonebookname", "Outlook").code == 0
    r = office.sync("-v")
    assert r.code == 0 and r.err.count(f"(full, {api})") == 3, r.err
    for email in small_tenant.mailboxes:
        outlook = [b for b in office.books(email) if b["name"] == "Outlook"][0]
        assert actual_entries(outlook) == expected_entries(small_tenant.mailbox(email))
    r = office.sync("-v")
    assert r.err.count(f"(incremental, {api})") == 3
