#!/usr/bin/env python3
"""The phonebook writer alone: what writing a full read costs, without HTTP or a source.

    python benchmarks/writer.py [--mailboxes 100] [--contacts 200] [--db sqlite] [--rounds 3]
        [--no-e164] [--setup-only]

Timings on a shared VM vary by ±20 % and more; instructions do not. What a change to the
writer saves, independent of the machine's mood (docs/performance.md):

    for a in "" --setup-only; do PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no \
        --cachegrind-out-file=/dev/null .venv/bin/python benchmarks/writer.py --mailboxes 20 \
        --rounds 1 --no-e164 $a 2>&1 | grep "I *refs"; done

Contacts come from the test generator (numbers written as people write them); each round
writes every mailbox's contacts into its own empty phonebook through the engine's path
(existing entries, diff, ``phonebook.apply`` inside a recorded run, so the run history is
written as in a sync). Printed per round: contacts/s of the whole write, and the share of
``to_e164`` (its cache cleared before each round) measured by running the same numbers
through it alone. MariaDB/PostgreSQL: a scratch database on the local server, as in
tenant_sync.py.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tenant_sync as ts  # noqa: E402

from ucware_contactsync import history, phone  # noqa: E402
from ucware_contactsync.contact import Contact, PhoneNumber  # noqa: E402
from ucware_contactsync.db import Database  # noqa: E402
from ucware_contactsync.model import User  # noqa: E402
from ucware_contactsync.phonebook import apply, diff_read, ensure_phonebook, existing_entries  # noqa: E402
from ucware_contactsync.testing.generator import random_contact_fields  # noqa: E402


def contacts(rng: random.Random, n: int, box: int) -> list[Contact]:
    out = []
    for i in range(n):
        f = random_contact_fields(rng)
        out.append(Contact(
            display_name=f["display_name"], given_name=f["given_name"], surname=f["surname"],
            company=f["company"], department=f["department"], job_title=f["job_title"],
            emails=tuple(f["emails"]), categories=tuple(f["categories"]),
            numbers=tuple(PhoneNumber(t, v) for t, v in f["numbers"].items()),
            source_id=f"AAMkAD{box:05d}-{i:06d}", change_key="CQAAABYAAA"))
    return out


def one_round(url: str, reads: list[list[Contact]],
              known: dict[str, str | None] | None = None) -> float:
    db = Database(url)
    with db.session() as s:
        users = []
        for b in range(len(reads)):
            u = User(email=f"user{b}@example.com", name=f"User {b}")
            s.add(u)
            users.append(u)
        s.flush()
        ids = [u.id for u in users]
    phone.to_e164.cache_clear()
    started = time.perf_counter()
    with history.recording("benchmark"):
        for uid, read in zip(ids, reads, strict=True):
            with db.session() as s:
                user = s.get(User, uid)
                assert user is not None
                book = ensure_phonebook(s, user, "Outlook", "office365")
                diff = diff_read(existing_entries(s, book.id, "office365"), read, [], True)
                apply(s, book, diff, "office365", "DE", "", known)
    seconds = time.perf_counter() - started
    db.dispose()
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mailboxes", type=int, default=100)
    p.add_argument("--contacts", type=int, default=200)
    p.add_argument("--db", default="sqlite", choices=("sqlite", "mariadb", "postgresql"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-e164", action="store_true",
                   help="E.164 computed before the rounds, as the sync's number worker does: "
                        "the rounds measure the writer alone")
    p.add_argument("--setup-only", action="store_true",
                   help="build the contacts (and E.164) and stop: run under valgrind with and "
                        "without it, the difference is the rounds' instructions")
    a = p.parse_args()
    rng = random.Random(7)
    reads = [contacts(rng, a.contacts, b) for b in range(a.mailboxes)]
    total = sum(len(r) for r in reads)
    numbers = [n.number for r in reads for c in r for n in c.numbers]
    known = {n: phone.to_e164(n, "DE", "") for n in numbers} if a.no_e164 else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-writer-"))
    print(f"{a.mailboxes} x {a.contacts} contacts, {len(numbers)} numbers, {a.db}")
    for r in range(a.rounds):
        url, drop = ts.fresh_db(a.db, tmp)
        seconds = 0.0 if a.setup_only else one_round(url, reads, known)
        if drop:
            drop()
        if a.setup_only:
            return
        share = "E.164 computed before"
        if known is None:
            phone.to_e164.cache_clear()
            t0 = time.perf_counter()
            for n in numbers:
                phone.to_e164(n, "DE", "")
            e164 = time.perf_counter() - t0
            share = f"{e164:5.2f} s of it to_e164, {1e6 * e164 / len(numbers):4.1f} µs a number"
        print(f"  round {r + 1}: {seconds:6.2f} s  {total / seconds:7.0f} contacts/s  ({share})")

if __name__ == "__main__":
    main()
