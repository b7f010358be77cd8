"""The ContactSource contract, written once and run for every source of the registry over
the real wire (the fake Exchange Online over HTTPS; exchangelib and requests unmocked).

Each case says what a ``Kind`` means, the same for every source: the sync engine acts on the
kind alone (AUTH stops the run with exit 2, STATE_INVALID re-reads everything, the others fail
only that mailbox). A new source gets these cases by its line in ``sources/registry.py``; a
fault the fake cannot yet cause for it needs one entry in ``THROTTLE`` below.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import pytest

from ucware_contactsync import settings as settings_mod
from ucware_contactsync.sources import SOURCES, ContactSource, Kind, SourceError
from ucware_contactsync.sources.auth import token_provider
from ucware_contactsync.testing import FakeExchange, Mailbox, Tenant

TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "66666666-7777-8888-9999-000000000000"
SECRET = "contract~secret"
ANNA = "anna.berg@contoso.de"

# How the fake throttles each API (Retry-After in seconds): the one per-source difference.
THROTTLE: dict[str, Callable[[FakeExchange, int, float], None]] = {
    "graph": lambda fx, count, secs: fx.faults.throttle_graph(count=count, retry_after_s=secs),
    "ews": lambda fx, count, secs: fx.faults.throttle_ews_http429(count=count, retry_after=secs),
}


# EWS once more against an on-premises Exchange: office365=false, a service account signing
# in with a real NTLM handshake instead of Entra tokens (the token cases do not apply).
ONPREM = "ews-onprem"
THROTTLE[ONPREM] = THROTTLE["ews"]
TOKENS_ONLY = pytest.mark.parametrize("api", list(SOURCES), indirect=True)


def wire(api: str) -> str:
    """The registry's name of the source a case runs."""
    return "ews" if api == ONPREM else api


@pytest.fixture(params=[*SOURCES, ONPREM])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tenant() -> Tenant:
    t = Tenant(tenant_id=TENANT_ID, seed=3)
    t.add_app(CLIENT_ID, SECRET, roles=["Contacts.Read", "full_access_as_app"])
    mbx = t.add_mailbox(ANNA)
    kunden = mbx.add_folder("Kunden")
    mbx.add_contact(given_name="Jürgen", surname="Größ", company="Müller & Söhne GmbH",
                    emails=["j.groess@mueller.de"],
                    numbers={"business": "+49 89 1234-0", "mobile": "0171 5556677"})
    mbx.add_contact(given_name="Zoë", surname="Öztürk", numbers={"home": "030 123456"},
                    folder=kunden)
    mbx.add_distribution_list("Verteiler Vertrieb", members=["a@x.de"])
    t.add_mailbox("denied@contoso.de").add_contact(given_name="Nie", surname="Gelesen")
    return t


@pytest.fixture
def fx(tenant: Tenant, api: str) -> Iterator[FakeExchange]:
    with FakeExchange(tenant, on_premises=api == ONPREM) as server:
        yield server


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short back-off for retries the server gave no delay for (not for Retry-After)."""
    from ucware_contactsync.sources import ews, graph

    monkeypatch.setattr(ews, "BACKOFF", 0.02)
    monkeypatch.setattr(graph.GraphSource, "backoff", 0.02)


def conf(fx: FakeExchange, **changes: str) -> settings_mod.Settings:
    return settings_mod.from_raw({**fx.settings(), "client_id": CLIENT_ID,
                                  "client_secret": SECRET, **changes})


def open_source(api: str, fx: FakeExchange, max_wait: float = 20.0, **changes: str
                ) -> ContactSource:
    cls = SOURCES[wire(api)].load()
    return cls(conf(fx, **changes), max_wait=max_wait)  # type: ignore[call-arg]


@pytest.fixture
def source(api: str, fx: FakeExchange) -> Iterator[ContactSource]:
    src = open_source(api, fx)
    yield src
    src.close()


def contacts(mbx: Mailbox) -> dict[str, tuple[str, frozenset[tuple[str, str]]]]:
    """What every source must deliver for a mailbox: id -> (display name, numbers)."""
    return {i.graph_id: (i.display_name, frozenset(i.numbers.items()))
            for i in mbx.all_items() if i.kind == "contact"}


def got(read_contacts: list) -> dict[str, tuple[str, frozenset[tuple[str, str]]]]:  # type: ignore[type-arg]
    return {c.source_id: (c.display_name, frozenset((n.type, n.number) for n in c.numbers))
            for c in read_contacts}


def api_requests(fx: FakeExchange, api: str) -> list:  # type: ignore[type-arg]
    """The API's requests, without NTLM handshake legs (401s that never reached EWS) and
    without Graph's answered $batch envelopes (their sub-requests are recorded one by one; a
    refused batch, e.g. a 429, counts as the request it was)."""
    return [r for r in fx.requests_for(api=wire(api))  # type: ignore[arg-type]
            if not (r.operation is None and r.status == 401)
            and not (r.operation == "$batch" and r.status == 200)]


# -- reads ---------------------------------------------------------------------------------------


def test_full_read_is_every_contact_of_every_folder(api: str, fx: FakeExchange,
                                                    source: ContactSource) -> None:
    read = source.read(ANNA, None)
    assert read.api == wire(api) == source.api
    assert read.full and read.deleted == []
    assert got(read.contacts) == contacts(fx.tenant.mailbox(ANNA))
    # The distribution list is no contact (EWS counts it as skipped; Graph never lists it).
    assert read.states  # something to continue from
    assert read.requests == len(api_requests(fx, api))


def test_incremental_read_is_exactly_the_changes(fx: FakeExchange,
                                                 source: ContactSource) -> None:
    mbx = fx.tenant.mailbox(ANNA)
    first = source.read(ANNA, None)
    items = {i.surname: i for i in mbx.all_items() if i.kind == "contact"}
    added = mbx.add_contact(given_name="Neu", surname="Schäfer", numbers={"mobile": "0151 1"},
                            folder=mbx.folder_by_name("Kunden"))
    mbx.update_contact(items["Größ"].graph_id, numbers={"business": "+49 89 9999-0"})

    second = source.read(ANNA, first.states)
    assert not second.full and second.deleted == []
    now = contacts(mbx)
    assert got(second.contacts) == {k: now[k] for k in (added.graph_id, items["Größ"].graph_id)}

    third = source.read(ANNA, second.states)
    assert (third.full, third.contacts, third.deleted) == (False, [], [])


def test_deletion_is_reported_by_id(fx: FakeExchange, source: ContactSource) -> None:
    mbx = fx.tenant.mailbox(ANNA)
    first = source.read(ANNA, None)
    gone = next(i for i in mbx.all_items() if i.surname == "Öztürk")
    mbx.delete_contact(gone.graph_id)
    second = source.read(ANNA, first.states)
    assert (second.full, second.contacts, second.deleted) == (False, [], [gone.graph_id])


def test_invalid_state_is_state_invalid_then_a_full_read_works(
        fx: FakeExchange, source: ContactSource) -> None:
    first = source.read(ANNA, None)
    fx.faults.invalidate_sync_states(ANNA)
    with pytest.raises(SourceError) as err:
        source.read(ANNA, first.states)
    assert err.value.kind is Kind.STATE_INVALID
    again = source.read(ANNA, None)
    assert again.full and got(again.contacts) == contacts(fx.tenant.mailbox(ANNA))


# -- throttling ----------------------------------------------------------------------------------


def test_throttling_is_waited_out(api: str, fx: FakeExchange, source: ContactSource) -> None:
    THROTTLE[api](fx, 1, 1.0)
    started = time.monotonic()
    read = source.read(ANNA, None)
    assert time.monotonic() - started >= 1.0  # the server's Retry-After was honoured
    assert got(read.contacts) == contacts(fx.tenant.mailbox(ANNA))
    assert 429 in [r.status for r in api_requests(fx, api)]


def test_throttling_beyond_the_budget_is_throttled(api: str, fx: FakeExchange) -> None:
    source = open_source(api, fx, max_wait=1.5)
    THROTTLE[api](fx, 100, 1.0)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    assert err.value.kind is Kind.THROTTLED
    assert "max_workers" in err.value.hint
    assert time.monotonic() - started < 5.0
    source.close()


# -- one mailbox fails ---------------------------------------------------------------------------


def test_missing_mailbox(api: str, fx: FakeExchange, source: ContactSource) -> None:
    with pytest.raises(SourceError) as err:
        source.read("nobody@contoso.de", None)
    assert err.value.kind is Kind.MAILBOX_MISSING
    assert "nobody@contoso.de" in err.value.message and "primary SMTP" in err.value.hint
    assert err.value.exit_code == 1


def test_access_denied(fx: FakeExchange, source: ContactSource) -> None:
    fx.faults.fail_mailbox("denied@contoso.de", "denied")
    with pytest.raises(SourceError) as err:
        source.read("denied@contoso.de", None)
    assert err.value.kind is Kind.ACCESS_DENIED
    assert source.read(ANNA, None).full  # the next mailbox is read


def test_server_error_is_transient(fx: FakeExchange, source: ContactSource) -> None:
    fx.faults.fail_mailbox(ANNA, "http500")
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    assert err.value.kind is Kind.TRANSIENT and err.value.exit_code == 1


# -- the whole app fails -------------------------------------------------------------------------


def test_untrusted_certificate_is_auth(api: str, fx: FakeExchange) -> None:
    """Deterministic and the same for every mailbox: one line with the fix, the run stops."""
    trusted = conf(fx)
    tokens = token_provider(trusted, SOURCES[wire(api)].url(trusted))  # the endpoint is fine
    plain = dataclasses.replace(trusted, ca_bundle="")  # the system CAs do not know the fake
    cls = SOURCES[wire(api)].load()
    source = cls(plain, tokens=tokens, max_wait=5)  # type: ignore[call-arg]
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    source.close()
    assert err.value.kind is Kind.AUTH and err.value.exit_code == 2
    assert "TLS" in err.value.message and "ca_bundle" in err.value.hint
    assert not api_requests(fx, api)  # nothing reached the server's application


@TOKENS_ONLY
def test_wrong_secret_is_auth(api: str, fx: FakeExchange) -> None:
    source = open_source(api, fx, client_secret="not-the-secret")
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    source.close()
    assert err.value.kind is Kind.AUTH and err.value.exit_code == 2
    assert "AADSTS7000215" in err.value.message and "client_secret" in err.value.hint
    assert not api_requests(fx, api)


@TOKENS_ONLY
def test_token_endpoint_down_is_transient(api: str, fx: FakeExchange) -> None:
    source = open_source(api, fx)
    fx.faults.token_endpoint_down()
    with pytest.raises(SourceError) as err:
        source.read(ANNA, None)
    source.close()
    assert err.value.kind is Kind.TRANSIENT and err.value.exit_code == 1
    assert "token endpoint" in err.value.message
    assert not api_requests(fx, api)


def test_check_proves_access_without_reading_everything(
        api: str, fx: FakeExchange, source: ContactSource) -> None:
    source.check(ANNA)
    with pytest.raises(SourceError) as err:
        source.check("nobody@contoso.de")
    assert err.value.kind is Kind.MAILBOX_MISSING
