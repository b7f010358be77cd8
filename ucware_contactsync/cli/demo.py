"""demo: the whole job against the bundled fake Exchange Online, into a throw-away SQLite."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .. import db as dbmod
from .. import directory, logs, phonebook, settings_store
from ..contact import Contact, PhoneNumber
from ..db import Database
from ..errors import EXIT_OK
from ..lookup import lookup
from ..ownership import Origin
from ..sources import SOURCES
from ..sync.engine import SyncEngine
from .common import chosen_source

GROUP = "Outlook-Kontakte"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    return result.exit_code


def run_demo(args: argparse.Namespace) -> int:
    # Imported here: the fake (TLS server, certificates) is only loaded when the demo runs.
    from ..testing import FakeExchange, generate_tenant, mutate

    # Only an explicit --db is used; the demo never writes into the configured database.
    tmp = Path(tempfile.mkdtemp(prefix="contactsync-demo-"))
    url = args.db or f"sqlite:///{tmp / 'demo.db'}"
    tenant = generate_tenant(seed=2026, mailboxes=3, contacts_per_mailbox=120,
                             roles=("Contacts.Read", "full_access_as_app"))
    app = next(iter(tenant.apps.values()))
    logs.register_secret(app.secret)
    database = Database(url)
    dbmod.upgrade(database.engine)
    with FakeExchange(tenant) as fx:
        _say(f"fake Exchange Online at {fx.base_url} (tenant {tenant.tenant_id})")
        _say(f"database: {dbmod.redact(url)}")
        with database.session() as s:
            for key, value in {**fx.settings(), "api": args.api}.items():
                settings_store.set_value(s, key, value)
            directory.add_group(s, GROUP)
            directory.set_param(s, GROUP, directory.SYNC_PARAM, "true")
            emails = sorted(tenant.mailboxes)
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
            _say(f"   {b['owner']} / {b['name']}: {len(b['entries'])} entries "
                 f"({by_hand} typed by hand)")
        sample = next(n for b in books for e in b["entries"] for n in e["numbers"]
                      if n["e164"] and e["source_id"])
        caller = "0" + sample["e164"][3:] if sample["e164"].startswith("+49") else sample["e164"]
        hits = lookup(s, caller, "DE")
        _say(f"\n== caller-ID: lookup {caller!r} (stored as {sample['number']!r})")
        _say("   " + json.dumps(hits[:2], ensure_ascii=False))
        hits = lookup(s, "+49 89 445566", "DE")
        _say(f"   lookup '+49 89 445566' -> {hits[0]['display_name'] if hits else 'none'}")
    database.dispose()
    _say(f"\ndemo database kept at {tmp / 'demo.db'}; try: ucware-contactsync --db "
         f"sqlite:///{tmp / 'demo.db'} phonebook show")
    return EXIT_OK if code == 0 else code
