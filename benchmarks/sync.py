#!/usr/bin/env python3
"""Benchmark of the Office 365 sync against the fake Exchange Online (prints figures).

    python benchmarks/sync.py [--mailboxes 5] [--contacts 2000] [--api ews|graph|both]
                              [--db URL]

For each API: a baseline (the source's reads alone, no database), the first full sync, an
incremental run after 1% of the contacts changed, and an unchanged run. Ratios are against
the baseline measured in the same process, so they say what the database side costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ucware_contactsync import db as dbmod  # noqa: E402
from ucware_contactsync import directory, settings_store  # noqa: E402
from ucware_contactsync.db import Database  # noqa: E402
from ucware_contactsync.sources import choose, open_source  # noqa: E402
from ucware_contactsync.sync.engine import SyncEngine  # noqa: E402
from ucware_contactsync.testing import FakeExchange, generate_tenant, mutate  # noqa: E402


def timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run(api: str, mailboxes: int, contacts: int, url: str | None) -> None:
    tenant = generate_tenant(seed=99, mailboxes=mailboxes, contacts_per_mailbox=contacts,
                             roles=("Contacts.Read", "full_access_as_app"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    url = url or f"sqlite:///{tmp / 'bench.db'}"
    database = Database(url)
    dbmod.upgrade(database.engine)
    total = mailboxes * contacts
    with FakeExchange(tenant) as fx:
        with database.session() as s:
            for key, value in {**fx.settings(), "api": api}.items():
                settings_store.set_value(s, key, value)
            directory.add_group(s, "G")
            directory.set_param(s, "G", "ews_synccontacts", "true")
            for email in sorted(tenant.mailboxes):
                directory.add_user(s, email)
                directory.add_member(s, "G", email)
        with database.session() as s:
            conf = settings_store.load(s)
        choice = choose(conf)
        source = open_source(conf, choice)
        emails = sorted(tenant.mailboxes)

        from concurrent.futures import ThreadPoolExecutor

        def read_all():  # type: ignore[no-untyped-def]
            with ThreadPoolExecutor(conf.max_workers) as pool:
                return list(pool.map(lambda e: source.read(e, None), emails))

        reads, base = timed(read_all)
        got = sum(len(r.contacts) for r in reads)
        print(f"[{api}] {mailboxes} mailboxes x {contacts} contacts = {total} "
              f"(db: {dbmod.redact(url).split(':')[0]})")
        print(f"  baseline: read only        {base:7.2f} s  {got / base:8.0f} contacts/s")

        def sync(**kw):  # type: ignore[no-untyped-def]
            return SyncEngine(database, conf, source, **kw).run()

        res, full = timed(sync)
        assert not res.failed, res.failed
        print(f"  first sync (full)          {full:7.2f} s  {got / full:8.0f} contacts/s  "
              f"x{full / base:.2f} of baseline")
        change = mutate(tenant, seed=1, adds=contacts // 300, updates=contacts // 300,
                        deletes=contacts // 300)
        res, inc = timed(sync)
        assert not res.failed
        print(f"  incremental, {sum(change.counts):5d} changes {inc:7.2f} s  "
              f"x{inc / base:.2f} of baseline")
        res, same = timed(sync)
        print(f"  unchanged run              {same:7.2f} s  x{same / base:.2f} of baseline")
        res, fullagain = timed(lambda: sync(full=True))
        print(f"  --full, nothing changed    {fullagain:7.2f} s  x{fullagain / base:.2f} of "
              "baseline")
        source.close()
    database.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mailboxes", type=int, default=5)
    p.add_argument("--contacts", type=int, default=2000)
    p.add_argument("--api", choices=("ews", "graph", "both"), default="both")
    p.add_argument("--db", default=os.environ.get("BENCH_DB_URL"))
    a = p.parse_args()
    for api in (("ews", "graph") if a.api == "both" else (a.api,)):
        run(api, a.mailboxes, a.contacts, a.db)


if __name__ == "__main__":
    main()
