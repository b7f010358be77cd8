"""Company phonebooks through the command line, against the fake Exchange Online over HTTPS:
the directory (Graph /users delta, mail contacts, a group) and shared mailboxes (Graph, EWS).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ucware_contactsync.contact import Contact, PhoneNumber
from ucware_contactsync.model import Phonebook
from ucware_contactsync.phonebook import add_manual_entry
from ucware_contactsync.testing import Tenant

ROLES = ("Contacts.Read", "User.Read.All", "OrgContact.Read.All", "GroupMember.Read.All")


def directory_tenant(roles: tuple[str, ...] = ROLES) -> Tenant:
    t = Tenant(seed=18)
    t.add_app(roles=roles)
    anna = t.add_mailbox("anna.berg@contoso.de")
    anna.add_contact(given_name="Privat", surname="Kontakt", numbers={"mobile": "0171 5550101"})
    d = t.directory
    d.add_user("anna.berg@contoso.de", given_name="Anna", surname="Berg",
               business_phones=["+49 89 12345-100"], mobile="+49 171 5550100",
               job_title="Einkauf", department="Einkauf", company="Contoso GmbH")
    d.add_user("ben.cohen@contoso.de", given_name="Ben", surname="Cohen",
               business_phones=["+49 89 12345-200"], job_title="Vertrieb")
    d.add_user("carla.diaz@contoso.de", given_name="Carla", surname="Díaz")  # no number
    d.add_user("dieter.ernst@contoso.de", given_name="Dieter", surname="Ernst",
               business_phones=["+49 89 12345-400"], enabled=False)
    d.add_user("gast_extern.de#EXT#@contoso.de", display_name="Gast Extern",
               business_phones=["+49 30 5550000"], user_type="Guest")
    d.add_org_contact("Lieferant Müller", mail="info@mueller.example",
                      phones={"business": "+49 40 5550123", "mobile": "+49 160 5550123"},
                      company="Müller KG")
    return t


def shared(books: list[dict]) -> dict[str, dict]:
    return {b["name"]: b for b in books if b["owner"] is None}


def names(book: dict) -> set[str]:
    return {e["display_name"] for e in book["entries"]}


def test_directory_first_incremental_guard_dry_run(office_factory, cli, database):
    t = directory_tenant()
    office = office_factory(t)
    assert cli("config", "set", "directory_phonebook", "Firma").code == 0
    assert cli("config", "set", "directory_orgcontacts", "true").code == 0
    r = office.sync("-v")
    assert r.code == 0, r.err
    firma = shared(office.books())["Firma"]
    assert firma["source"] == "directory"
    assert names(firma) == {"Anna Berg", "Ben Cohen", "Lieferant Müller"}
    anna = next(e for e in firma["entries"] if e["display_name"] == "Anna Berg")
    assert (anna["job_title"], anna["department"], anna["company"]) == (
        "Einkauf", "Einkauf", "Contoso GmbH")
    assert anna["emails"] == ["anna.berg@contoso.de"]
    assert [(n["type"], n["e164"]) for n in anna["numbers"]] == [
        ("business", "+498912345100"), ("mobile", "+491715550100")]
    lief = next(e for e in firma["entries"] if e["display_name"] == "Lieferant Müller")
    assert [n["type"] for n in lief["numbers"]] == ["business", "mobile"]
    # the personal phonebook is synced beside it
    assert names(office.book("anna.berg@contoso.de")) == {"Privat Kontakt"}

    # caller-ID finds a colleague, whatever format the number comes in
    r = cli("lookup", "089 12345200", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == [{"owner": None, "phonebook": "Firma",
                                  "display_name": "Ben Cohen", "type": "business",
                                  "number": "+49 89 12345-200", "e164": "+498912345200"}]

    # an entry typed into the shared phonebook by hand stays whatever the sync does
    with database.session() as s:
        book = s.scalar(select(Phonebook).where(Phonebook.title == "Firma"))
        add_manual_entry(s, book, Contact(display_name="Empfang", numbers=(
            PhoneNumber("business", "+49 89 12345-0"),)), "DE")

    # nightly changes: a colleague's new mobile, a disabled account, a deleted mail contact
    d = t.directory
    d.update("ben.cohen@contoso.de", mobilePhone="+49 172 5550200")
    d.disable("anna.berg@contoso.de")
    lieferant = next(o for o in d.objects.values() if o.kind == "orgContact")
    d.remove(lieferant.id)
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert "1 updated, 2 removed" in r.err and "(incremental, graph)" in r.err
    firma = shared(office.books())["Firma"]
    assert names(firma) == {"Ben Cohen", "Empfang"}
    ben = next(e for e in firma["entries"] if e["display_name"] == "Ben Cohen")
    assert [n["number"] for n in ben["numbers"]] == ["+49 89 12345-200", "+49 172 5550200"]
    ops = [r.operation for r in office.fx.requests_for("graph")
           if r.mailbox is None and r.operation != "$batch"]  # a batch: its sub-requests count
    assert sorted(ops) == ["orgContact-delta", "user", "user", "user-delta"]

    # unchanged: two delta requests, nothing written
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0 and "Firma' (directory): 0 added, 0 updated, 0 removed" in r.err
    ops = [r.operation for r in office.fx.requests_for("graph")
           if r.mailbox is None and r.operation != "$batch"]  # a batch: its sub-requests count
    assert sorted(ops) == ["orgContact-delta", "user-delta"]

    # dry run: shows, writes nothing
    d.update("ben.cohen@contoso.de", jobTitle="Vertriebsleiter")
    r = office.sync("--dry-run", "-v")
    assert r.code == 0 and "~ Ben Cohen" in r.err and "would be" in r.err
    assert names(shared(office.books())["Firma"]) == {"Ben Cohen", "Empfang"}
    assert office.sync().code == 0
    ben = next(e for e in shared(office.books())["Firma"]["entries"]
               if e["display_name"] == "Ben Cohen")
    assert ben["job_title"] == "Vertriebsleiter"

    # guard: the directory suddenly returns nobody -> nothing deleted without --force
    for i in range(4):
        d.add_user(f"neu{i}@contoso.de", given_name="Neu", surname=str(i),
                   business_phones=[f"+49 89 12345-5{i}0"])
    assert office.sync().code == 0
    assert len(shared(office.books())["Firma"]["entries"]) == 6
    for u in d.users():
        d.disable(u.id)
    r = office.sync()
    assert r.code == 1
    assert "would remove 5 of the 5 synced entries" in r.err and "--force" in r.err
    assert len(shared(office.books())["Firma"]["entries"]) == 6
    assert names(office.book("anna.berg@contoso.de")) == {"Privat Kontakt"}
    assert office.sync("--force").code == 0
    assert names(shared(office.books())["Firma"]) == {"Empfang"}


def test_lookup_with_user_own_phonebook_first(office_factory, cli):
    t = directory_tenant()
    t.mailbox("anna.berg@contoso.de").add_contact(given_name="Ben", surname="privat",
                                                  numbers={"business": "089 12345-200"})
    office = office_factory(t)
    assert cli("config", "set", "directory_phonebook", "Firma").code == 0
    assert office.sync().code == 0
    r = cli("lookup", "+498912345200", "--user", "anna.berg@contoso.de", "--json")
    hits = json.loads(r.out)
    assert [(h["owner"], h["phonebook"]) for h in hits] == [
        ("anna.berg@contoso.de", "Privat"), (None, "Firma")]


def test_directory_permission_missing_names_the_role(office_factory, cli):
    office = office_factory(directory_tenant(roles=("Contacts.Read",)))
    assert cli("config", "set", "directory_phonebook", "Firma").code == 0
    r = office.sync()
    assert r.code == 1
    line = next(x for x in r.err.splitlines() if "Firma" in x and "FAILED" in x)
    assert "lacks User.Read.All" in line and "admin consent" in line
    assert "Traceback" not in r.err
    # the personal phonebook was synced all the same, the shared one not made
    assert names(office.book("anna.berg@contoso.de")) == {"Privat Kontakt"}
    assert "Firma" not in shared(office.books())
    # check names the missing role and the fix, for the directory and a shared mailbox
    t = office.tenant
    t.add_mailbox("kontakte@contoso.de", impersonation_denied=True)
    assert cli("shared", "add", "kontakte@contoso.de", "--phonebook", "Kontakte").code == 0
    r = cli("check")
    assert r.code == 1
    lines = {x.split(":")[0].strip(): x for x in r.out.splitlines() if "shared phonebook" in x}
    assert "lacks User.Read.All" in lines["shared phonebook 'Firma' (directory)"]
    kontakte = lines["shared phonebook 'Kontakte' (shared mailbox"]
    assert "Contacts.Read" in kontakte and "Application Contacts.Read" in kontakte


def test_directory_group_limits_members(office_factory, cli):
    t = directory_tenant()
    d = t.directory
    ben = d.find("ben.cohen@contoso.de")
    sales = d.add_group("Vertrieb", [ben])
    d.add_group("Alle", [sales])
    office = office_factory(t)
    for key, value in (("directory_phonebook", "Vertrieb"), ("directory_group", "Alle")):
        assert cli("config", "set", key, value).code == 0
    r = office.sync("-vv")
    assert r.code == 0, r.err
    assert names(shared(office.books())["Vertrieb"]) == {"Ben Cohen"}
    assert cli("config", "set", "directory_group", "Gibtsnicht").code == 0
    r = office.sync()
    assert r.code == 1 and "no group named 'Gibtsnicht'" in r.err


@pytest.mark.parametrize("api", ["graph", "ews"])
def test_shared_mailbox(office_factory, cli, api):
    roles = ("Contacts.Read",) if api == "graph" else ("full_access_as_app",)
    t = Tenant(seed=19)
    t.add_app(roles=roles)
    t.add_mailbox("anna.berg@contoso.de").add_contact(given_name="A", surname="B",
                                                      numbers={"mobile": "0171 1"})
    office = office_factory(t)
    kontakte = t.add_mailbox("kontakte@contoso.de")  # shared: no UC user
    c1 = kontakte.add_contact(given_name="Hotline", surname="Support",
                              numbers={"business": "+49 800 5550100"})
    kontakte.add_contact(given_name="Notdienst", numbers={"mobile": "+49 170 5550199"})
    kunden = kontakte.add_folder("Kunden")
    kontakte.add_contact(given_name="Kunde", surname="Eins", folder=kunden,
                         numbers={"business": "+49 30 5550111"})
    kontakte.add_contact(given_name="Ohne", surname="Nummer")
    assert cli("shared", "add", "kontakte@contoso.de", "--phonebook", "Kontakte").code == 0
    r = cli("shared", "list", "--json")
    assert json.loads(r.out) == [{"phonebook": "Kontakte", "source": "shared-mailbox",
                                  "mailbox": "kontakte@contoso.de", "folder": None,
                                  "entries": 0}]
    r = office.sync("-v")
    assert r.code == 0, r.err
    book = shared(office.books())["Kontakte"]
    assert book["source"] == "shared-mailbox"
    assert names(book) == {"Hotline Support", "Notdienst", "Kunde Eins"}
    # a deleted shared contact leaves the phonebook
    kontakte.delete_contact(c1.id)
    r = office.sync("-v")
    assert r.code == 0 and "0 added, 0 updated, 1 removed" in r.err and "incremental" in r.err
    assert names(shared(office.books())["Kontakte"]) == {"Notdienst", "Kunde Eins"}
    assert json.loads(cli("lookup", "030 5550111", "--json").out)[0]["owner"] is None
    # remove: the phonebook goes
    assert cli("shared", "remove", "kontakte@contoso.de").code == 0
    assert "Kontakte" not in shared(office.books())
    assert cli("shared", "remove", "kontakte@contoso.de").code == 2


def service_mailbox(office_factory, seed: int, role: str):  # type: ignore[no-untyped-def]
    """A tenant with one synced user and the shared mailbox service@contoso.de: one contact
    in Contacts (not in the folder), and the folders Kunden and Kunden/Nord (empty).
    Returns (tenant, office, service mailbox, Kunden, Nord)."""
    t = Tenant(seed=seed)
    t.add_app(roles=(role,))
    t.add_mailbox("anna.berg@contoso.de").add_contact(given_name="A", surname="B",
                                                      numbers={"mobile": "0171 1"})
    office = office_factory(t)
    service = t.add_mailbox("service@contoso.de")
    service.add_contact(given_name="Nicht", surname="drin", numbers={"mobile": "0171 2"})
    kunden = service.add_folder("Kunden")
    nord = service.add_folder("Nord", parent=kunden)
    return t, office, service, kunden, nord


def test_shared_mailbox_folder_and_failures(office_factory, cli, database):
    t, office, service, kunden, nord = service_mailbox(office_factory, 20, "Contacts.Read")
    service.add_contact(given_name="Kunde", surname="Nord", folder=nord,
                        numbers={"business": "040 5550"})
    t.add_mailbox("gesperrt@contoso.de", impersonation_denied=True)
    assert cli("shared", "add", "service@contoso.de", "--phonebook", "Kunden",
               "--folder", "Kunden").code == 0
    assert cli("shared", "add", "gesperrt@contoso.de", "--phonebook", "Gesperrt").code == 0
    # a hand-kept shared phonebook of the same title is never taken over
    with database.session() as s:
        s.add(Phonebook(owner_id=None, title="Empfang", source="manual"))
    r = cli("shared", "add", "service@contoso.de", "--phonebook", "Empfang")
    assert r.code == 2 and "typed in by hand" in r.err
    r = office.sync()
    assert r.code == 1
    assert names(shared(office.books())["Kunden"]) == {"Kunde Nord"}
    failed = [x for x in r.err.splitlines() if "FAILED" in x]
    assert len(failed) == 1 and "gesperrt@contoso.de" in failed[0]
    assert "Contacts.Read" in failed[0]
    assert shared(office.books())["Empfang"]["source"] == "manual"
    # public folders are refused on Exchange Online, with the reason
    r = cli("shared", "add", "--public-folder", "Firma/Kontakte", "--phonebook", "PF")
    assert r.code == 2 and "on-premises Exchange" in r.err and len(r.err.splitlines()) == 1


def test_demo_shows_company_phonebooks(cli):
    r = cli("demo")
    assert r.code == 0, r.err
    assert "shared / Firma (directory): 5 entries" in r.out
    assert "shared / Kontakte (shared-mailbox):" in r.out
    assert "(a colleague's mobile) -> IT-Support (shared phonebook 'Firma')" in r.out


def test_public_folder_on_premises(office_factory, cli):
    """On-premises Exchange (NTLM service account): FindItem and change keys; an unchanged
    public folder writes nothing and is never read with GetItem."""
    from ucware_contactsync.testing import public_folders

    t = Tenant(seed=21)
    t.add_app(roles=("full_access_as_app",))
    t.add_mailbox("anna.berg@contoso.de").add_contact(given_name="A", surname="B",
                                                      numbers={"mobile": "0171 1"})
    kontakte = public_folders.add_folder(t, "Firma/Kontakte")
    lieferanten = public_folders.add_folder(t, "Firma/Kontakte/Lieferanten")
    public_folders.add_folder(t, "Firma/Andere")
    pf = public_folders.store(t)
    empfang = pf.add_contact(display_name="Empfang", folder=kontakte,
                             numbers={"business": "089 4711-0"})
    hv = pf.add_contact(display_name="Hausverwaltung", folder=kontakte,
                        numbers={"business": "089 123456"})
    pf.add_contact(display_name="Lieferant Müller", folder=lieferanten,
                   numbers={"mobile": "0160 5550123"})
    office = office_factory(t, on_premises=True)
    r = cli("shared", "add", "--public-folder", "Firma/Kontakte", "--phonebook", "Firma")
    assert r.code == 0, r.err
    r = office.sync("-v")
    assert r.code == 0, r.err
    book = shared(office.books())["Firma"]
    assert book["source"] == "public-folder"
    assert names(book) == {"Empfang", "Hausverwaltung", "Lieferant Müller"}
    # unchanged: FindItem per folder, no GetItem, nothing written
    office.fx.clear_requests()
    r = office.sync("-v")
    assert r.code == 0 and "Firma' (public folder: Firma/Kontakte): 0 added, 0 updated, " \
        "0 removed" in r.err
    ops = [x.operation for x in office.fx.requests_for("ews") if x.operation]
    assert "GetItem" not in ops and ops.count("FindItem") == 2
    # a changed and a deleted contact
    pf.update_contact(hv.id, numbers={"business": "089 654321"})
    pf.delete_contact(empfang.id)
    r = office.sync("-v")
    assert r.code == 0 and "0 added, 1 updated, 1 removed" in r.err
    assert names(shared(office.books())["Firma"]) == {"Hausverwaltung", "Lieferant Müller"}
    # a path that does not exist fails that phonebook only, with one line
    assert cli("shared", "add", "--public-folder", "Firma/Gibtsnicht",
               "--phonebook", "Weg").code == 0
    r = office.sync()
    assert r.code == 1
    failed = [x for x in r.err.splitlines() if "FAILED" in x]
    assert len(failed) == 1 and "'Firma/Gibtsnicht' not found" in failed[0]


def test_shared_mailbox_folder_over_ews(office_factory, cli):
    t, office, service, kunden, nord = service_mailbox(office_factory, 22, "full_access_as_app")
    service.add_contact(given_name="Kunde", surname="Eins", folder=kunden,
                        numbers={"business": "040 5551"})
    gone = service.add_contact(given_name="Kunde", surname="Nord", folder=nord,
                               numbers={"business": "040 5550"})
    assert cli("shared", "add", "service@contoso.de", "--phonebook", "Kunden",
               "--folder", "Kunden").code == 0
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert names(shared(office.books())["Kunden"]) == {"Kunde Eins", "Kunde Nord"}
    service.delete_contact(gone.id)
    r = office.sync("-v")
    assert r.code == 0 and "0 added, 0 updated, 1 removed" in r.err and "incremental" in r.err
    # a new subfolder: its folder set changed, so the phonebook is read in full once
    service.add_contact(given_name="Kunde", surname="Süd", folder=service.add_folder(
        "Süd", parent=kunden), numbers={"business": "089 5552"})
    r = office.sync("-v")
    assert r.code == 0, r.err
    assert names(shared(office.books())["Kunden"]) == {"Kunde Eins", "Kunde Süd"}


def test_directory_throttled_then_served(office_factory, cli):
    """Graph's 429 with Retry-After on the directory is waited out, as for mailboxes."""
    office = office_factory(directory_tenant())
    assert cli("config", "set", "directory_phonebook", "Firma").code == 0
    assert cli("sync", "--user", "anna.berg@contoso.de").code == 0  # personal only
    assert "Firma" not in shared(office.books())
    office.fx.faults.throttle_graph(count=2, retry_after_s=0.1)
    r = office.sync()
    assert r.code == 0, r.err
    assert names(shared(office.books())["Firma"]) == {"Anna Berg", "Ben Cohen"}
    assert len([x for x in office.fx.requests_for("graph") if x.fault == "throttle_graph"]) == 2
