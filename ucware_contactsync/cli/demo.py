"""demo: the whole job against the bundled fake Exchange Online, into a throw-away SQLite."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import db as dbmod
from .. import directory, logs, phonebook, settings_store
from ..contact import Contact, PhoneNumber
from ..db import Database
from ..errors import EXIT_OK
from ..lookup import lookup
from ..model import Phonebook
from ..ownership import Origin
from ..settings import Settings
from ..sources import SOURCES
from ..sync.engine import SyncEngine
from ..sync.shared import SharedBook, SharedSync, configured
from .common import chosen_source

if TYPE_CHECKING:
    from ..testing import Tenant
from .synccmd import shared_source

GROUP = "Outlook-Kontakte"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("demo", parents=[common],
                       help="run the whole job against a bundled fake Exchange Online")
    p.add_argument("--api", choices=("auto", *SOURCES), default="auto",
                   help="which API the demo uses (default: auto, which picks Graph)")
    p.set_defaults(func=run_demo)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _sync(database: Database, label: str) -> int:
    with database.session() as s:
        conf = settings_store.load(s)
    choice, source = chosen_source(conf)
    _say(f"\n== {label}: using {choice.api} ({choice.reason})")
    try:
        result = SyncEngine(database, conf, source).run()
    finally:
        source.close()
    for u in result.users:
        _say(f"   {u.email}: {u.diff.summary() if u.diff else u.message}"
             f"{' (full read)' if u.full else ' (incremental)' if u.diff else ''}")
    if result.aborted:
        _say(f"   error: {result.aborted}")
    _say(f"   {result.summary()}")
    shared = None if result.aborted else SharedSync(
        database, conf, lambda book: shared_source(conf, choice, book)).run(
        _shared_books(database, conf))
    for r in shared.results if shared else ():
        _say(f"   {r.book.label}: {r.diff.summary() if r.diff else r.message}")
    if shared is None:
        return result.exit_code
    _say(f"   {shared.summary()}")
    return max(result.exit_code, shared.exit_code)


def _shared_books(database: Database, conf: Settings) -> list[SharedBook]:
    with database.session() as s:
        return configured(s, conf)


def _company(tenant: Tenant, emails: list[str]) -> None:
    """The tenant's directory (the users and two colleagues without a mailbox here) and a
    shared mailbox kontakte@ that no UC user owns."""
    d = tenant.directory
    for i, email in enumerate(emails):
        first, _, last = email.split("@")[0].partition(".")
        d.add_user(email, given_name=first.title(), surname=last.title(),
                   business_phones=[f"+49 89 4711-{100 + i}"], job_title="Vertrieb",
                   department="Vertrieb", company="Contoso GmbH")
    d.add_user("empfang@contoso.de", display_name="Empfang", business_phones=["+49 89 4711-0"])
    d.add_user("it.support@contoso.de", display_name="IT-Support",
               business_phones=["+49 89 4711-999"], mobile="+49 171 4711999")
    d.add_user("alt.konto@contoso.de", display_name="Altes Konto",
               business_phones=["+49 89 4711-500"], enabled=False)
    kontakte = tenant.add_mailbox("kontakte@contoso.de", display_name="Kontakte")
    kontakte.add_contact(display_name="Hausverwaltung Schmidt", company="Schmidt Immobilien",
                         numbers={"business": "089 123 456-0"})
    kontakte.add_contact(display_name="Schlüsseldienst 24h", numbers={"mobile": "0171 9876543"})


def run_demo(args: argparse.Namespace) -> int:
    # Imported here: the fake (TLS server, certificates) is only loaded when the demo runs.
    from ..testing import FakeExchange, generate_tenant, mutate

    # Only an explicit --db is used; the demo never writes into the configured database.
    tmp = Path(tempfile.mkdtemp(prefix="contactsync-demo-"))
    url = args.db or f"sqlite:///{tmp / 'demo.db'}"
    tenant = generate_tenant(seed=2026, mailboxes=3, contacts_per_mailbox=120,
                             roles=("Contacts.Read", "full_access_as_app", "User.Read.All"))
    _company(tenant, sorted(tenant.mailboxes))
    app = next(iter(tenant.apps.values()))
    logs.register_secret(app.secret)
    database = Database(url)
    dbmod.upgrade(database.engine)
    with FakeExchange(tenant) as fx:
        _say(f"fake Exchange Online at {fx.base_url} (tenant {tenant.tenant_id})")
        _say(f"database: {dbmod.redact(url)}")
        with database.session() as s:
            for key, value in {**fx.settings(), "api": args.api,
                               "directory_phonebook": "Firma"}.items():
                settings_store.set_value(s, key, value)
            s.add(Phonebook(owner_id=None, title="Kontakte", source=Origin.SHARED_MAILBOX.value,
                            mailbox="kontakte@contoso.de"))
            directory.add_group(s, GROUP)
            directory.set_param(s, GROUP, directory.SYNC_PARAM, "true")
            emails = sorted(m for m in tenant.mailboxes if m != "kontakte@contoso.de")
            for email in emails:
                directory.add_user(s, email)
                directory.add_member(s, GROUP, email)
            first = directory.require_user(s, emails[0])
            # Typed into the phonebook the sync will keep (the title is the sync's own).
            book = phonebook.writable_phonebook(
                s, first, "Privat", Origin.HAND,
                phonebook.reserved_for(s, first, "Privat", "Privat"))
            assert book is not None
            phonebook.add_manual_entry(s, book, Contact(
                display_name="Pizzeria Da Mario (von Hand)",
                numbers=(PhoneNumber("business", "089 / 44 55 66"),)), "DE")
        _say(f"users in group {GROUP!r} (ews_synccontacts=true): {', '.join(emails)}")
        _say(f"{emails[0]} typed one entry by hand: Pizzeria Da Mario")
        _say("company phonebooks: 'Firma' from the Entra directory (directory_phonebook), "
             "'Kontakte' from the shared mailbox kontakte@contoso.de (shared add)")

        code = _sync(database, "first run")
        change = mutate(tenant, seed=7, adds=3, updates=2, deletes=1)
        a, u, d = change.counts
        _say(f"\n== in Outlook: {a} contacts added, {u} changed, {d} deleted")
        code = max(code, _sync(database, "second run"))

    with database.session() as s:
        books = [phonebook.to_json(b) for b in phonebook.load_phonebooks(s)]
        _say("\n== phonebooks")
        for b in books:
            by_hand = sum(1 for e in b["entries"] if e["source_id"] is None)
            _say(f"   {b['owner'] or 'shared'} / {b['name']} ({b['source']}): "
                 f"{len(b['entries'])} entries ({by_hand} typed by hand)")
        sample = next(n for b in books for e in b["entries"] for n in e["numbers"]
                      if n["e164"] and e["source_id"])
        caller = "0" + sample["e164"][3:] if sample["e164"].startswith("+49") else sample["e164"]
        hits = lookup(s, caller, "DE")
        _say(f"\n== caller-ID: lookup {caller!r} (stored as {sample['number']!r})")
        _say("   " + json.dumps(hits[:2], ensure_ascii=False))
        hits = lookup(s, "+49 89 445566", "DE")
        _say(f"   lookup '+49 89 445566' -> {hits[0]['display_name'] if hits else 'none'}")
        hits = lookup(s, "0171 4711999", "DE")
        _say("   lookup '0171 4711999' (a colleague's mobile) -> "
             + (f"{hits[0]['display_name']} (shared phonebook {hits[0]['phonebook']!r})"
                if hits else "none"))
    database.dispose()
    _say(f"\ndemo database kept at {tmp / 'demo.db'}; try: ucware-contactsync --db "
         f"sqlite:///{tmp / 'demo.db'} phonebook show")
    return EXIT_OK if code == 0 else code
