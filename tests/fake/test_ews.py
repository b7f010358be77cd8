"""Real exchangelib 5.6 (OAuth2 app-only, impersonation, HTTPS) against the fake EWS."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from exchangelib import DEEP, Account
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInvalidSyncStateData,
    ErrorNonExistentMailbox,
    UnauthorizedError,
)
from exchangelib.folders import Contacts, Root, SingleFolderQuerySet
from exchangelib.items import Contact, DistributionList

from ucware_contactsync.contact import EWS_LABELS
from ucware_contactsync.testing import FakeExchange, Tenant
from ucware_contactsync.testing.clients import EWS_FIELDS as FIELDS

ANNA = "anna.berg@contoso.de"


def ews_ops(fx: FakeExchange) -> list[str]:
    return [r.operation or "" for r in fx.requests if r.api == "ews"]


def test_account_contacts_sends_two_getfolders(fx: FakeExchange,
                                               account: Callable[..., Account]) -> None:
    acc = account(ANNA.upper())  # primary SMTP is matched case-insensitively
    contacts = acc.contacts
    assert isinstance(contacts, Contacts)
    assert contacts.id == fx.tenant.mailbox(ANNA).contacts.ews_id
    assert ews_ops(fx) == ["GetFolder", "GetFolder"]
    bodies = [r.body for r in fx.requests if r.api == "ews"]
    assert 'DistinguishedFolderId Id="root"' in bodies[0]
    assert 'DistinguishedFolderId Id="contacts"' in bodies[1]
    assert all(r.mailbox == ANNA for r in fx.requests if r.api == "ews")
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in fx.requests
               if r.api == "ews")


def test_lock_free_distinguished_folders(fx: FakeExchange,
                                         account: Callable[..., Account]) -> None:
    acc = account(ANNA)
    root = Root.get_distinguished(account=acc)
    contacts = Contacts.get_distinguished(root=root)
    assert contacts.id == fx.tenant.mailbox(ANNA).contacts.ews_id
    assert contacts.name == "Contacts"


def test_read_all_fields_with_paging_and_chunks(fx: FakeExchange, tenant: Tenant,
                                                account: Callable[..., Account]) -> None:
    mbx = tenant.mailbox(ANNA)
    for i in range(30):  # make sure several pages exist
        mbx.add_contact(given_name=f"Paging{i}", surname="Test", numbers={"business": f"0{i}"})
    acc = account(ANNA)
    fx.clear_requests()
    qs = acc.contacts.all().only(*FIELDS)
    qs.page_size = 25
    qs.chunk_size = 20
    got = list(qs)
    stored = list(mbx.contacts.items.values())
    assert [g.id for g in got] == [s.ews_id for s in stored]
    ops = ews_ops(fx)
    assert ops.count("FindItem") > 1 and ops.count("GetItem") > 1
    by_id = {s.ews_id: s for s in stored}
    contacts = [g for g in got if isinstance(g, Contact)]
    lists = [g for g in got if isinstance(g, DistributionList)]
    assert len(lists) == 2 and len(contacts) == len(got) - 2
    for g in contacts:
        s = by_id[g.id]
        assert g.changekey == s.change_key
        assert (g.display_name, g.given_name, g.surname) == (
            s.display_name, s.given_name or None, s.surname or None)
        assert (g.company_name or "", g.department or "", g.job_title or "") == (
            s.company, s.department, s.job_title)
        assert [e.email for e in g.email_addresses or []] == s.emails
        nums = {EWS_LABELS[p.label]: p.phone_number for p in g.phone_numbers or []}
        assert nums == s.numbers
        assert list(g.categories or []) == s.categories


def test_every_phone_label_and_odd_text_round_trips(fx: FakeExchange, tenant: Tenant,
                                                    account: Callable[..., Account]) -> None:
    mbx = tenant.mailbox(ANNA)
    numbers = {t: f"+49 89 {i:04d}-0" for i, t in enumerate(EWS_LABELS.values())}
    c = mbx.add_contact(given_name="Zoë", surname="Öztürk & <Söhne> 🎉", numbers=numbers,
                        emails=["a@x.de", "b@x.de", "c@x.de"], categories=["VIP", "Ärzte"])
    acc = account(ANNA)
    [got] = acc.fetch(ids=[(c.ews_id, c.change_key)], only_fields=list(FIELDS))
    assert {EWS_LABELS[p.label]: p.phone_number for p in got.phone_numbers} == numbers
    assert got.surname == "Öztürk & <Söhne> 🎉"
    assert [e.label for e in got.email_addresses] == ["EmailAddress1", "EmailAddress2",
                                                       "EmailAddress3"]


def test_subfolders_by_one_deep_findfolder(fx: FakeExchange, tenant: Tenant,
                                           account: Callable[..., Account]) -> None:
    acc = account(ANNA)
    contacts = acc.contacts
    fx.clear_requests()
    subs = list(SingleFolderQuerySet(account=acc, folder=contacts).depth(DEEP).all())
    assert ews_ops(fx).count("FindFolder") == 1
    expected = tenant.mailbox(ANNA).contacts.descendants()
    assert [s.id for s in subs] == [f.ews_id for f in expected]
    nested = [s for s in subs if s.parent_folder_id.id != contacts.id]
    assert len(nested) == 1  # generate_tenant nests one folder
    # Items of a subfolder read the same way.
    folder = subs[0]
    items = list(folder.all().only(*FIELDS))
    assert {i.id for i in items} == set(expected[0].items)


def test_sync_items_incremental(fx: FakeExchange, tenant: Tenant,
                                account: Callable[..., Account]) -> None:
    mbx = tenant.mailbox(ANNA)
    acc = account(ANNA)
    contacts = acc.contacts
    first = list(contacts.sync_items(only_fields=list(FIELDS), max_changes_returned=10))
    state = contacts.item_sync_state
    assert state and {k for k, _ in first} == {"create"}
    assert {i.id for _, i in first} == set(mbx.contacts.items)
    assert ews_ops(fx).count("SyncFolderItems") > 1  # paged
    assert any(isinstance(i, DistributionList) for _, i in first)

    # No change -> nothing.
    assert list(contacts.sync_items(sync_state=state, only_fields=list(FIELDS))) == []

    items = list(mbx.contacts.items.values())
    changed = mbx.update_contact(items[0].graph_id, company="Neue Firma GmbH")
    mbx.update_contact(items[0].ews_id, job_title="Chefin")  # two updates -> one Update
    mbx.delete_contact(items[1].ews_id)
    added = mbx.add_contact(given_name="Neu", surname="Kontakt")
    mbx.update_contact(added.ews_id, company="X")  # create+update -> one Create
    ghost = mbx.add_contact(given_name="Kurz", surname="Lebig")
    mbx.delete_contact(ghost.ews_id)  # create+delete -> nothing

    changes = list(contacts.sync_items(sync_state=state, only_fields=list(FIELDS),
                                       max_changes_returned=2))
    kinds = {(k, i.id) for k, i in changes}
    assert kinds == {("update", changed.ews_id), ("delete", items[1].ews_id),
                     ("create", added.ews_id)}
    upd = next(i for k, i in changes if k == "update")
    assert upd.company_name == "Neue Firma GmbH" and upd.job_title == "Chefin"
    assert upd.changekey == changed.change_key
    assert contacts.item_sync_state != state


def test_invalid_sync_state(fx: FakeExchange, tenant: Tenant,
                            account: Callable[..., Account]) -> None:
    acc = account(ANNA)
    contacts = acc.contacts
    with pytest.raises(ErrorInvalidSyncStateData):
        list(contacts.sync_items(sync_state="H4sIAAAAAAAEAO29B2AcSZYlJi9tynt",
                                 only_fields=["display_name"]))
    list(contacts.sync_items(only_fields=["display_name"]))
    state = contacts.item_sync_state
    fx.faults.invalidate_sync_states(ANNA)
    with pytest.raises(ErrorInvalidSyncStateData):
        list(contacts.sync_items(sync_state=state, only_fields=["display_name"]))
    # A fresh full sync works again. exchangelib falls back to folder.item_sync_state when
    # sync_state is None, so a full resync must clear that attribute first.
    contacts.item_sync_state = None
    assert len(list(contacts.sync_items(only_fields=["display_name"]))) == len(
        tenant.mailbox(ANNA).contacts.items)


def test_sync_hierarchy(fx: FakeExchange, tenant: Tenant,
                        account: Callable[..., Account]) -> None:
    mbx = tenant.mailbox(ANNA)
    acc = account(ANNA)
    contacts = acc.contacts
    first = list(contacts.sync_hierarchy())
    assert {f.id for _, f in first} == {f.ews_id for f in mbx.contacts.descendants()}
    state = contacts.folder_sync_state
    new = mbx.add_folder("Neu", parent=mbx.contacts)
    old = mbx.contacts.children()[0]
    mbx.delete_folder(old)
    changes = list(contacts.sync_hierarchy(sync_state=state))
    assert ("create", new.ews_id) in {(k, f.id) for k, f in changes}
    assert ("delete", old.ews_id) in {(k, f.id) for k, f in changes}
    # From the root: all folders incl. Contacts itself.
    root_changes = list(acc.root.sync_hierarchy())
    assert mbx.contacts.ews_id in {f.id for _, f in root_changes}


def test_mailbox_errors(fx: FakeExchange, tenant: Tenant,
                        account: Callable[..., Account]) -> None:
    with pytest.raises(ErrorNonExistentMailbox):
        _ = account("nobody@contoso.de").contacts
    tenant.add_mailbox("locked@contoso.de", impersonation_denied=True)
    with pytest.raises(ErrorImpersonateUserDenied):
        _ = account("locked@contoso.de").contacts


def test_token_without_ews_role_is_401(fx: FakeExchange, tenant: Tenant,
                                       account: Callable[..., Account]) -> None:
    graph_only = tenant.add_app(roles=["Contacts.Read"])
    with pytest.raises(UnauthorizedError):
        _ = account(ANNA, client_id=graph_only.client_id).contacts
    rec = [r for r in fx.requests if r.api == "ews"][-1]
    assert rec.status == 401


def test_tenant_changes_visible_across_server_restart(tenant: Tenant,
                                                      account: Callable[..., Account],
                                                      fx: FakeExchange) -> None:
    acc = account(ANNA)
    contacts = acc.contacts
    list(contacts.sync_items(only_fields=["display_name"]))
    state = contacts.item_sync_state
    fx.stop()
    added = tenant.mailbox(ANNA).add_contact(given_name="Nach", surname="Neustart")
    with FakeExchange(tenant) as fx2:
        from ucware_contactsync.testing.clients import ews_account

        acc2 = ews_account(fx2, ANNA)
        changes = list(acc2.contacts.sync_items(sync_state=state, only_fields=["display_name"]))
        assert [(k, i.id) for k, i in changes] == [("create", added.ews_id)]


def test_graph_id_is_malformed_in_ews(fx: FakeExchange, tenant: Tenant,
                                      account: Callable[..., Account]) -> None:
    from exchangelib.errors import ErrorInvalidIdMalformed

    item = next(i for i in tenant.mailbox(ANNA).all_items() if "/" in i.ews_id
                or "+" in i.ews_id)
    [got] = account(ANNA).fetch(ids=[(item.graph_id, None)], only_fields=["display_name"])
    assert isinstance(got, ErrorInvalidIdMalformed)


def test_without_impersonation_header(fx: FakeExchange) -> None:
    from exchangelib import DELEGATE, OAUTH2, Configuration, Version
    from exchangelib.errors import ErrorInvalidExchangeImpersonationHeaderData
    from exchangelib.version import EXCHANGE_O365

    from ucware_contactsync.testing.clients import ews_credentials

    app = next(iter(fx.tenant.apps.values()))
    cfg = Configuration(service_endpoint=fx.ews_url, auth_type=OAUTH2,
                        credentials=ews_credentials(fx, app.client_id, app.secret),
                        version=Version(build=EXCHANGE_O365, api_version="Exchange2016"))
    acc = Account(ANNA, access_type=DELEGATE, config=cfg, autodiscover=False)
    with pytest.raises(ErrorInvalidExchangeImpersonationHeaderData):
        _ = acc.contacts


def test_many_threads_many_mailboxes(fx: FakeExchange, tenant: Tenant,
                                     account: Callable[..., Account]) -> None:
    """One credentials object, several accounts and threads, EWS and Graph at once."""
    from concurrent.futures import ThreadPoolExecutor

    from ucware_contactsync.testing.clients import ews_credentials, graph_session

    app = next(iter(tenant.apps.values()))
    creds = ews_credentials(fx, app.client_id, app.secret)
    session = graph_session(fx)
    boxes = list(tenant.mailboxes.values())

    def via_ews(smtp: str) -> set[str]:
        acc = account(smtp, credentials=creds)
        root = Root.get_distinguished(account=acc)
        contacts = Contacts.get_distinguished(root=root)
        qs = contacts.all().only(*FIELDS)
        qs.page_size = 20
        return {i.id for i in qs}

    def via_graph(smtp: str) -> set[str]:
        r = session.get(f"{fx.graph_url}/v1.0/users/{smtp}/contacts?$top=1000", timeout=10)
        return {c["id"] for c in r.json()["value"]}

    with ThreadPoolExecutor(max_workers=6) as pool:
        ews = list(pool.map(via_ews, [m.smtp for m in boxes] * 2))
        graph = list(pool.map(via_graph, [m.smtp for m in boxes] * 2))
    for n, m in enumerate(boxes * 2):
        assert ews[n] == set(m.contacts.items)
        assert graph[n] == {i.graph_id for i in m.contacts.items.values()
                            if i.kind == "contact"}
