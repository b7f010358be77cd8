"""GraphSource against the fake Exchange Online over real HTTPS (nothing mocked)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit

import pytest

from ucware_contactsync.contact import NUMBER_TYPES, Contact, PhoneNumber
from ucware_contactsync.settings import Settings
from ucware_contactsync.sources.auth import TokenProvider, scope_for
from ucware_contactsync.sources.base import Kind, SourceError
from ucware_contactsync.sources.graph import GraphSource, to_contact
from ucware_contactsync.sources.graph.folders import HIERARCHY
from ucware_contactsync.testing import FakeExchange, Item, Mailbox, Tenant, generate_tenant

TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "66666666-7777-8888-9999-000000000000"
SECRET = "s3cr3t~value"
ANNA = "anna.mueller@contoso.de"

# One number per type, written the way users type them (hidden types included).
ALL_NUMBERS = {t: f"+49 89 1234-{i:02d}" for i, t in enumerate(NUMBER_TYPES)}
ALL_NUMBERS["mobile"] = " 0171 / 555 66 77 "  # stored stripped


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def tenant() -> Tenant:
    t = Tenant(tenant_id=TENANT_ID, seed=7)
    t.add_app(CLIENT_ID, SECRET, roles=["Contacts.Read"])
    mbx = t.add_mailbox(ANNA)
    kunden = mbx.add_folder("Kunden")
    nord = mbx.add_folder("Nord", parent=kunden)
    mbx.add_folder("Leer")
    mbx.add_contact(given_name="Jürgen", surname="Größ", display_name="Jürgen Größ",
                    company="Müller & Söhne GmbH", department="Vertrieb Süd",
                    job_title="Geschäftsführer", emails=["j.groess@mueller.de", "jg@gmx.de"],
                    numbers=ALL_NUMBERS, categories=["Kunden", "VIP"])
    mbx.add_contact(given_name="Zoë", surname="Öztürk", numbers={"mobile": "0151 1234567"},
                    folder=kunden)
    mbx.add_contact(given_name="Åsa", surname="Østergaard", emails=["asa@example.dk"],
                    numbers={"tty": "030 999", "business_fax": "030 998"}, folder=nord)
    mbx.add_distribution_list("Verteiler Vertrieb", members=["a@x.de", "b@x.de"])
    mbx.add_distribution_list("Verteiler Nord", members=["c@x.de"], folder=nord)
    return t


@pytest.fixture
def fx(tenant: Tenant) -> Iterator[FakeExchange]:
    with FakeExchange(tenant) as server:
        yield server


def settings_for(fx: FakeExchange, secret: str = SECRET) -> Settings:
    return Settings(tenant_id=fx.tenant.tenant_id, client_id=CLIENT_ID, client_secret=secret,
                    login_url=fx.login_url, graph_url=fx.graph_url, ca_bundle=fx.ca_file)


@pytest.fixture
def source(fx: FakeExchange) -> Iterator[GraphSource]:
    src = GraphSource(settings_for(fx))
    src.backoff = 0.05  # keep transient back-off short in tests
    yield src
    src.close()


def mailbox(fx: FakeExchange, smtp: str = ANNA) -> Mailbox:
    return fx.tenant.mailbox(smtp)


def folder_key(folder) -> str:  # type: ignore[no-untyped-def]
    """The source's key of a folder: the default one is addressed as ``contacts``."""
    return "contacts" if folder.kind == "contacts" else folder.graph_id


def expected(item: Item) -> Contact:
    """What a Graph read must give for a fake item (same rules as the EWS source)."""
    nums = {t: v.strip() for t, v in item.numbers.items() if v.strip()}
    return Contact(
        display_name=item.display_name.strip(), given_name=item.given_name.strip(),
        surname=item.surname.strip(), company=item.company.strip(),
        department=item.department.strip(), job_title=item.job_title.strip(),
        emails=tuple(e.strip() for e in item.emails if e.strip()),
        numbers=tuple(PhoneNumber(t, nums[t]) for t in NUMBER_TYPES if t in nums),
        categories=tuple(item.categories), source_id=item.graph_id,
        change_key=item.change_key, folder=folder_key(item.folder))


def contacts_of(mbx: Mailbox) -> dict[str, Contact]:
    return {i.graph_id: expected(i) for i in mbx.all_items() if i.kind == "contact"}


def graph_log(fx: FakeExchange, smtp: str = ANNA) -> list:  # type: ignore[type-arg]
    """The requests for one mailbox (plain GETs and sub-requests of batches)."""
    return fx.requests_for(api="graph", mailbox=smtp)


def round_trips(fx: FakeExchange) -> list:  # type: ignore[type-arg]
    """The HTTP requests to Graph (a $batch counts once)."""
    return [r for r in fx.requests_for(api="graph") if r.round_trip]


def folder_states(states: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in states.items() if k != HIERARCHY}


# -- full read ----------------------------------------------------------------------------------


def test_full_read_maps_every_field_and_number_type(fx: FakeExchange,
                                                    source: GraphSource) -> None:
    mbx = mailbox(fx)
    groess = next(i for i in mbx.all_items() if i.surname == "Größ")
    result = source.read(ANNA, None)

    assert result.api == "graph" and result.full
    got = {c.source_id: c for c in result.contacts}[groess.graph_id]
    assert got == Contact(
        display_name="Jürgen Größ", given_name="Jürgen", surname="Größ",
        company="Müller & Söhne GmbH", department="Vertrieb Süd", job_title="Geschäftsführer",
        emails=("j.groess@mueller.de", "jg@gmx.de"),
        numbers=tuple(PhoneNumber(t, ALL_NUMBERS[t].strip()) for t in NUMBER_TYPES),
        categories=("Kunden", "VIP"), source_id=groess.graph_id,
        change_key=groess.change_key)
    assert [n.type for n in got.numbers] == list(NUMBER_TYPES)  # all 19, in EWS order
    assert got.folder == "contacts"
    # Ids are canonical (URL-safe) and equal to the EWS id converted.
    for c in result.contacts:
        assert c.source_id is not None and "+" not in c.source_id and "/" not in c.source_id
    assert groess.ews_id.replace("+", "-").replace("/", "_") == groess.graph_id


def test_full_read_equals_mailbox_with_subfolders_and_without_lists(
        fx: FakeExchange, source: GraphSource) -> None:
    mbx = mailbox(fx)
    result = source.read(ANNA, None)

    got = {c.source_id: c for c in result.contacts}
    assert got == contacts_of(mbx)
    assert len(result.contacts) == 3  # the two distribution lists are not contacts
    lists = {i.graph_id for i in mbx.all_items() if i.kind == "distribution_list"}
    assert lists and not lists & set(got)
    nord = mbx.folder_by_name("Kunden", "Nord")
    assert {c.folder for c in result.contacts if c.surname == "Østergaard"} == {nord.graph_id}
    # One state per folder, each a deltaLink; nested and empty folders included; and the
    # folder hierarchy's delta state.
    assert set(folder_states(result.states)) == {folder_key(f) for f in mbx.contact_folders()}
    assert all("/contacts/delta?" in link for link in folder_states(result.states).values())
    assert "/contactFolders/delta?" in result.states[HIERARCHY]
    assert result.requests == len(graph_log(fx))
    # No walk of childFolders: one folder delta round, batched with the first contact delta.
    assert not [r for r in graph_log(fx) if r.operation == "childFolders"]
    assert len([r for r in graph_log(fx) if r.operation == "folderDelta"]) == 1
    assert len(round_trips(fx)) == 3  # folders + default delta; default list + 3 deltas; lists


def test_without_subfolders_only_the_default_folder(fx: FakeExchange) -> None:
    src = GraphSource(settings_for(fx), include_subfolders=False)
    result = src.read(ANNA, None)
    assert [c.surname for c in result.contacts] == ["Größ"]
    assert list(result.states) == ["contacts"]
    assert not [r for r in graph_log(fx) if r.operation == "childFolders"]


def test_full_read_requests_only_needed_fields_and_hidden_numbers(
        fx: FakeExchange, source: GraphSource) -> None:
    source.read(ANNA, None)
    listing = [r for r in graph_log(fx) if r.operation == "contacts"]
    query = unquote(listing[0].query).replace("+", " ")
    assert "$select=id,changeKey,displayName" in query
    assert "singleValueExtendedProperties($filter=id eq 'String 0x3A24' or " in query
    assert "$top=1000" in query
    deltas = [r for r in graph_log(fx) if r.operation == "delta"]
    assert deltas and all(r.headers.get("Prefer") == "odata.maxpagesize=200" for r in deltas)
    assert "$select=id" in unquote(deltas[0].query)


def test_paging_of_listing_and_delta(fx: FakeExchange, source: GraphSource) -> None:
    mbx = mailbox(fx)
    for n in range(450):
        mbx.add_contact(given_name=f"Kontakt {n}", surname="Weiß",
                        numbers={"business": f"089 {n}", "pager": f"0160 {n}"})
    source.page_size = 100
    result = source.read(ANNA, None)

    assert {c.source_id: c for c in result.contacts} == contacts_of(mbx)
    log = graph_log(fx)
    listing = [r for r in log if r.operation == "contacts" and "contactFolders" not in r.path]
    deltas = [r for r in log if r.operation == "delta" and "contactFolders" not in r.path]
    assert len(listing) == 5  # 451 contacts, 100 a page
    assert len(deltas) == 3  # 451 changes, 200 a page
    # Follow-up pages are the server's nextLinks (skip tokens), not re-built queries.
    assert all("skiptoken" in r.query for r in listing[1:])


def test_full_read_of_a_generated_mailbox() -> None:
    tenant = generate_tenant(seed=11, mailboxes=1, contacts_per_mailbox=250, subfolders=3,
                             client_id=CLIENT_ID, secret=SECRET)
    mbx = next(iter(tenant.mailboxes.values()))
    with FakeExchange(tenant) as fx:
        result = GraphSource(settings_for(fx)).read(mbx.smtp, None)
    assert {c.source_id: c for c in result.contacts} == contacts_of(mbx)
    assert set(folder_states(result.states)) == {folder_key(f) for f in mbx.contact_folders()}


def test_graph_and_ews_read_the_same_contacts(tenant: Tenant) -> None:
    """Switching a tenant from EWS to Graph must not change any stored entry."""
    ews = pytest.importorskip("ucware_contactsync.sources.ews")
    tenant.app(CLIENT_ID).roles = ("full_access_as_app", "Contacts.Read")
    mbx = tenant.mailbox(ANNA)
    mbx.add_contact(given_name="Nur", surname="Zweitnummer", numbers={"business2": "089 2"})
    with FakeExchange(tenant) as fx:
        s = Settings(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=SECRET,
                     login_url=fx.login_url, graph_url=fx.graph_url, ews_url=fx.ews_url,
                     ca_bundle=fx.ca_file)
        by_graph = {c.source_id: c for c in GraphSource(s).read(ANNA, None).contacts}
        by_ews = {c.source_id: c for c in ews.EwsSource(s).read(ANNA, None).contacts}
    assert set(by_graph) == set(by_ews)
    lone = next(i.graph_id for i in mbx.all_items() if i.surname == "Zweitnummer")
    # businessPhones has no slots; the 0x3A1B property tells that this one is Business 2.
    assert by_graph[lone].numbers == (PhoneNumber("business2", "089 2"),)
    for sid, contact in by_graph.items():
        assert contact == by_ews[sid]
        assert contact.numbers == by_ews[sid].numbers


# -- incremental read ---------------------------------------------------------------------------


def test_incremental_read_returns_exactly_the_changes(fx: FakeExchange,
                                                      source: GraphSource) -> None:
    mbx = mailbox(fx)
    first = source.read(ANNA, None)
    items = {i.surname: i for i in mbx.all_items() if i.kind == "contact"}
    kunden = mbx.folder_by_name("Kunden")
    nord = mbx.folder_by_name("Kunden", "Nord")

    added = mbx.add_contact(given_name="Neu", surname="Schäfer",
                            numbers={"radio": "0171 1", "home": "030 2"}, folder=nord)
    added_default = mbx.add_contact(given_name="Neu", surname="Becker")
    mbx.update_contact(items["Größ"].ews_id, numbers={**ALL_NUMBERS, "tty": "030 777"})
    mbx.update_contact(items["Öztürk"].graph_id, company="Café Süß")
    mbx.delete_contact(items["Østergaard"].ews_id)
    flash = mbx.add_contact(given_name="Kurz", surname="Lebig", folder=kunden)
    mbx.delete_contact(flash.ews_id)  # created and deleted between runs: nothing to report
    fx.clear_requests()

    second = source.read(ANNA, first.states)

    assert not second.full
    want = {i.graph_id: expected(i) for i in (added, added_default, items["Größ"],
                                              items["Öztürk"])}
    assert {c.source_id: c for c in second.contacts} == want
    assert len(second.contacts) == 4
    assert second.deleted == [items["Østergaard"].graph_id]
    assert {c.folder for c in second.contacts if c.surname == "Schäfer"} == {nord.graph_id}
    tty = {n.type: n.number for n in want[items["Größ"].graph_id].numbers}["tty"]
    assert tty == "030 777"  # hidden number type changed: fetched with $expand

    log = graph_log(fx)
    assert not [r for r in log if r.operation == "contacts"]  # no full listing
    deltas = [r for r in log if r.operation == "delta"]
    stored = {(urlsplit(link).path, urlsplit(link).query)
              for link in folder_states(first.states).values()}
    assert {(r.path, r.query) for r in deltas} == stored  # exactly the stored links
    assert len([r for r in log if r.operation == "folderDelta"]) == 1  # and the folders' link
    assert len([r for r in log if r.operation == "contact"]) == 4  # one GET per change
    assert second.requests == len(log)
    # Folder delta and the four contact deltas (two round trips: at most four requests of
    # one mailbox at once), then the four GETs in a third.
    assert len(round_trips(fx)) == 3
    assert set(second.states) == set(first.states)
    assert second.states != first.states

    third = source.read(ANNA, second.states)
    assert (third.contacts, third.deleted) == ([], [])


def test_incremental_fetches_at_most_four_at_a_time(fx: FakeExchange,
                                                    source: GraphSource) -> None:
    """Outlook's MailboxConcurrency: the fake answers a fifth request in flight with 429."""
    mbx = mailbox(fx)
    first = source.read(ANNA, None)
    new = [mbx.add_contact(given_name=f"N{n}", surname="Parallel") for n in range(12)]
    fx.clear_requests()
    fx.faults.slow(0.15)
    second = source.read(ANNA, first.states)
    fx.faults.slow(0)

    assert {c.source_id for c in second.contacts} == {i.graph_id for i in new}
    log = graph_log(fx)
    assert not [r for r in log if r.status == 429]
    gets = [r for r in log if r.operation == "contact"]
    per_batch = sorted(len([g for g in gets if g.batch == b])
                       for b in {g.batch for g in gets})
    assert per_batch == [4, 4, 4]


def test_bulk_changes_list_the_folder_instead_of_one_get_each(
        fx: FakeExchange, source: GraphSource) -> None:
    mbx = mailbox(fx)
    kunden = mbx.folder_by_name("Kunden")
    first = source.read(ANNA, None)
    imported = [mbx.add_contact(given_name=f"Import {n}", surname="Groß", folder=kunden,
                                numbers={"isdn": f"0228 {n}"}) for n in range(60)]
    single = mbx.add_contact(given_name="Einzeln", surname="Klein")
    fx.clear_requests()
    second = source.read(ANNA, first.states)

    assert {c.source_id: c for c in second.contacts} == {
        i.graph_id: expected(i) for i in [*imported, single]}
    assert second.deleted == []
    log = graph_log(fx)
    assert [unquote(r.path).endswith(f"{kunden.graph_id}/contacts")
            for r in log if r.operation == "contacts"] == [True]
    assert len([r for r in log if r.operation == "contact"]) == 1  # just the single one
    assert second.requests < 15


def test_new_folder_is_read_whole_removed_folder_needs_a_full_read(
        fx: FakeExchange, source: GraphSource) -> None:
    mbx = mailbox(fx)
    first = source.read(ANNA, None)
    extra = mbx.add_folder("Lieferanten")
    inside = mbx.add_contact(given_name="Neu", surname="Lieferant", folder=extra,
                             numbers={"business": "089 1"})
    fx.clear_requests()
    second = source.read(ANNA, first.states)
    assert not second.full
    assert [c.source_id for c in second.contacts] == [inside.graph_id]
    assert second.contacts[0].folder == extra.graph_id
    assert extra.graph_id in second.states
    assert [r.operation for r in graph_log(fx) if "Lieferanten" in r.path
            or extra.graph_id in unquote(r.path)] == ["delta", "contacts"]
    mbx.delete_folder(mbx.folder_by_name("Kunden"))  # with Nord and its contacts
    with pytest.raises(SourceError) as err:
        source.read(ANNA, second.states)
    assert err.value.kind is Kind.STATE_INVALID
    third = source.read(ANNA, None)
    assert {c.surname for c in third.contacts} == {"Größ", "Lieferant"}


def test_invalid_delta_token_410_then_full_read(fx: FakeExchange, source: GraphSource) -> None:
    mbx = mailbox(fx)
    first = source.read(ANNA, None)
    fx.faults.invalidate_sync_states(ANNA)
    fx.clear_requests()
    with pytest.raises(SourceError) as err:
        source.read(ANNA, first.states)
    assert err.value.kind is Kind.STATE_INVALID
    # The contact deltas of all folders went out side by side, each answered 410.
    assert [r.status for r in graph_log(fx) if r.operation == "delta"] == [410] * 4

    again = source.read(ANNA, None)
    assert again.full and {c.source_id: c for c in again.contacts} == contacts_of(mbx)
    mbx.add_contact(given_name="Nach", surname="Neustart")
    after = source.read(ANNA, again.states)
    assert [c.surname for c in after.contacts] == ["Neustart"]


def test_state_of_another_api_or_host_is_invalid(fx: FakeExchange,
                                                 source: GraphSource) -> None:
    first = source.read(ANNA, None)
    ews_like = {fid: "H4sIAAAAAAAEAGNgYGBkYGBgZGRkYmBkZGBhYGBkYGBgYGRkYGA=" for fid in first.states}
    elsewhere = {fid: link.replace(fx.graph_url, "https://graph.example.org")
                 for fid, link in first.states.items()}
    fx.clear_requests()
    for states in (ews_like, elsewhere):
        with pytest.raises(SourceError) as err:
            source.read(ANNA, states)
        assert err.value.kind is Kind.STATE_INVALID
    assert not [r for r in graph_log(fx) if r.operation == "delta"]
    assert "contacts" in first.states


# -- throttling, dropped connections, tokens ----------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_ridden_out_after_retry_after(fx: FakeExchange, source: GraphSource,
                                                    status: int) -> None:
    fx.faults.throttle_graph(count=2, retry_after_s=1, status=status)
    started = time.monotonic()
    result = source.read(ANNA, None)
    waited = time.monotonic() - started

    assert waited >= 2.0  # two answers with Retry-After: 1
    assert len(result.contacts) == 3
    log = round_trips(fx)
    assert [r.status for r in log[:3]] == [status, status, 200]
    assert len({r.url for r in log[:3]}) == 1  # the same request, repeated
    assert log[1].started - log[0].started >= 1.0
    # Counted: what was sent, the sub-requests of the two refused batches included.
    assert result.requests == len(graph_log(fx)) + 2 * 3


def test_throttling_beyond_max_wait_gives_throttled(fx: FakeExchange) -> None:
    src = GraphSource(settings_for(fx), max_wait=2.5)
    fx.faults.throttle_graph(count=50, retry_after_s=1)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        src.read(ANNA, None)
    elapsed = time.monotonic() - started
    assert err.value.kind is Kind.THROTTLED
    assert err.value.retry_after == 1
    assert 2.0 <= elapsed < 3.5
    assert [r.status for r in round_trips(fx)] == [429, 429, 429]

    # A Retry-After longer than the whole budget fails at once instead of sleeping.
    fx.faults.throttle_graph(count=5, retry_after_s=30)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        src.read(ANNA, None)
    assert err.value.kind is Kind.THROTTLED and time.monotonic() - started < 1.0


def test_dropped_connection_is_retried(fx: FakeExchange, source: GraphSource) -> None:
    fx.faults.drop_connection(2, api="graph")
    result = source.read(ANNA, None)
    assert {c.source_id: c for c in result.contacts} == contacts_of(mailbox(fx))
    log = round_trips(fx)
    assert [r.fault for r in log[:3]] == ["drop_connection", "drop_connection", None]
    assert log[0].url == log[1].url == log[2].url


class _SkewedTokens(TokenProvider):
    """Uses its token until Graph refuses it, as a client with a wrong clock would."""

    def _fresh_enough(self) -> bool:
        return self._token is not None


def test_expired_token_is_renewed_once(fx: FakeExchange) -> None:
    s = settings_for(fx)
    tokens = _SkewedTokens(s.login_url, s.tenant_id, s.client_id, s.client_secret,
                           scope_for(s.graph_url), s.verify)
    src = GraphSource(s, tokens=tokens)
    fx.faults.token_lifetime(1)
    src.check(ANNA)
    time.sleep(2.1)  # the token's exp has passed for sure
    fx.faults.token_lifetime(None)
    fx.clear_requests()
    result = src.read(ANNA, None)

    assert len(result.contacts) == 3
    assert tokens.fetches == 2
    log = round_trips(fx)
    assert [r.status for r in log[:2]] == [401, 200] and log[0].url == log[1].url


def test_short_lived_tokens_during_a_long_read(fx: FakeExchange) -> None:
    mbx = mailbox(fx)
    for n in range(40):
        mbx.add_contact(given_name=f"T{n}", surname="Token", numbers={"car": f"0170 {n}"})
    src = GraphSource(settings_for(fx))
    src.page_size = 5
    fx.faults.token_lifetime(2)
    fx.faults.slow(0.12)
    result = src.read(ANNA, None)  # about 4 s, tokens live 1-2 s
    assert {c.source_id: c for c in result.contacts} == contacts_of(mbx)
    assert src.tokens.fetches >= 2


def test_twice_refused_token_is_auth(fx: FakeExchange) -> None:
    s = settings_for(fx)
    tokens = _SkewedTokens(s.login_url, s.tenant_id, s.client_id, s.client_secret,
                           scope_for(s.graph_url), s.verify)
    fx.faults.token_lifetime(1)
    tokens.access_token()
    time.sleep(2.1)
    # Every new token is born expired too: the source gives up after one renewal.
    fx.faults.token_lifetime(-5)
    with pytest.raises(SourceError) as err:
        GraphSource(s, tokens=tokens).read(ANNA, None)
    assert err.value.kind is Kind.AUTH
    assert "InvalidAuthenticationToken" in err.value.message
    assert [r.status for r in round_trips(fx)] == [401, 401]


# -- errors an admin must act on ------------------------------------------------------------------


def test_unknown_mailbox(fx: FakeExchange, source: GraphSource) -> None:
    with pytest.raises(SourceError) as err:
        source.read("nobody@contoso.de", None)
    assert err.value.kind is Kind.MAILBOX_MISSING
    assert "nobody@contoso.de" in err.value.message
    assert "primary SMTP" in err.value.hint
    assert len(round_trips(fx)) == 1  # not retried


def test_mailbox_not_enabled_for_rest(fx: FakeExchange, source: GraphSource) -> None:
    fx.tenant.add_mailbox("onprem@contoso.de", rest_enabled=False)
    with pytest.raises(SourceError) as err:
        source.read("onprem@contoso.de", None)
    assert err.value.kind is Kind.MAILBOX_MISSING
    assert "MailboxNotEnabledForRESTAPI" in err.value.message
    assert "api=ews" in err.value.hint


def test_access_denied_for_mailbox(fx: FakeExchange, source: GraphSource) -> None:
    fx.faults.fail_mailbox(ANNA, "denied")
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    assert err.value.kind is Kind.ACCESS_DENIED
    assert "ErrorAccessDenied" in err.value.message
    assert "Contacts.Read" in err.value.hint and "management scope" in err.value.hint


def test_app_without_contacts_read(fx: FakeExchange, source: GraphSource) -> None:
    fx.tenant.app(CLIENT_ID).roles = ("full_access_as_app",)
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    assert err.value.kind is Kind.ACCESS_DENIED


def test_server_error_is_retried_then_transient(fx: FakeExchange, source: GraphSource) -> None:
    fx.faults.fail_mailbox(ANNA, "http500")
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    assert err.value.kind is Kind.TRANSIENT
    assert "500" in err.value.message
    # The three requests of the first round, each tried transient_attempts times.
    assert [r.status for r in graph_log(fx)] == [500] * 3 * source.transient_attempts
    fx.faults.clear(ANNA)
    assert len(source.read(ANNA, None).contacts) == 3


def test_wrong_secret_is_auth_with_aadsts_code(fx: FakeExchange) -> None:
    src = GraphSource(settings_for(fx, secret="not-the-secret"))
    with pytest.raises(SourceError) as err:
        src.read(ANNA, None)
    assert err.value.kind is Kind.AUTH
    assert "AADSTS7000215" in err.value.message
    assert "client_secret" in err.value.hint
    assert not fx.requests_for(api="graph")


def test_untrusted_certificate_is_reported(fx: FakeExchange) -> None:
    s = settings_for(fx)
    tokens = TokenProvider(s.login_url, s.tenant_id, s.client_id, s.client_secret,
                           scope_for(s.graph_url), s.verify)
    plain = dataclasses.replace(s, ca_bundle="")  # the system CAs do not know the fake
    with pytest.raises(SourceError) as err:
        GraphSource(plain, tokens=tokens).read(ANNA, None)
    assert err.value.kind is Kind.AUTH and "ca_bundle" in err.value.hint


# -- check, threads, mapping --------------------------------------------------------------------


def test_check_is_one_request(fx: FakeExchange, source: GraphSource) -> None:
    source.check(ANNA)
    assert [r.operation for r in graph_log(fx)] == ["contactFolder"]
    with pytest.raises(SourceError) as err:
        source.check("nobody@contoso.de")
    assert err.value.kind is Kind.MAILBOX_MISSING


def test_parallel_reads_share_one_source() -> None:
    tenant = generate_tenant(seed=5, mailboxes=4, contacts_per_mailbox=60,
                             client_id=CLIENT_ID, secret=SECRET)
    with FakeExchange(tenant) as fx:
        src = GraphSource(settings_for(fx))
        boxes = list(tenant.mailboxes.values())
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda m: src.read(m.smtp, None), boxes))
        for mbx, result in zip(boxes, results, strict=True):
            assert {c.source_id: c for c in result.contacts} == contacts_of(mbx)
            assert result.requests == len(fx.requests_for(api="graph", mailbox=mbx.smtp))
        src.close()


def test_mapping_of_raw_graph_json() -> None:
    data = {
        "id": "AAMkAD+abc/def==", "changeKey": "ck", "displayName": None, "givenName": " Ida ",
        "surname": "Nuß", "companyName": None, "department": None, "jobTitle": None,
        "emailAddresses": [{"name": "x", "address": ""}, {"name": "Ida", "address": "ida@x.de"}],
        "businessPhones": ["", "089 2"], "homePhones": [], "mobilePhone": "   ",
        "categories": ["Privat"],
        "singleValueExtendedProperties": [
            {"id": "String 0x3a4b", "value": "030 1"},  # lower-case hex, as Graph answers
            {"id": "String 0x3A24", "value": "030 2"},
            {"id": "String 0x9999", "value": "ignored"},
        ],
    }
    c = to_contact(data, "folder-1")
    assert c.numbers == (PhoneNumber("business2", "089 2"), PhoneNumber("business_fax", "030 2"),
                         PhoneNumber("tty", "030 1"))
    assert (c.display_name, c.given_name, c.surname, c.company) == ("", "Ida", "Nuß", "")
    assert c.emails == ("ida@x.de",) and c.categories == ("Privat",)
    assert c.source_id == "AAMkAD-abc_def==" and c.change_key == "ck" and c.folder == "folder-1"
