"""CSV import benchmark (not a test): 100,000 own-format rows into a fresh SQLite file.

    python benchmarks/csv_import.py [--rows 100000] [--db sqlite:////tmp/bench.db]

1. generates the file (10 users x 2 phonebooks, realistic German numbers, e-mails),
2. first import: parse / diff / write seconds and rows/s,
3. re-import with 1% of the rows changed (a number edited) — must be all updates,
4. baseline in the same process: a plain executemany insert of the same rows (entries and
   numbers, no parsing, no E.164) into another fresh SQLite file, and the ratio.
Targets: first import < 30 s, re-import < 10 s on the 2-core build machine.
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ucware_contactsync import db as dbmod  # noqa: E402
from ucware_contactsync.csvimport import import_csv  # noqa: E402
from ucware_contactsync.db import Database  # noqa: E402
from ucware_contactsync.directory import add_user  # noqa: E402

HEADER = ["owner", "phonebook", "id", "display_name", "given_name", "surname", "company",
          "department", "job_title", "emails", "business", "mobile", "home", "business_fax"]
GIVEN = ["Anna", "Max", "Eva", "Jörg", "Lena", "Paul", "Sophie", "Lukas", "Marie", "Jonas",
         "Zoë", "Ömer", "Hanna", "Felix", "Clara"]
SURNAMES = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
            "Schulz", "Hoffmann", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder"]
COMPANIES = ["ACME GmbH", "Contoso AG", "Fabrikam KG", "Northwind e.K.", "Tailspin GmbH & Co. KG",
             "", "Müller Bau", "Stadtwerke Nord"]
AREAS = ["30", "40", "69", "89", "221", "211", "351", "511", "621", "711", "911", "7531"]
USERS = [f"user{i}@bench.example" for i in range(10)]
BOOKS = ["Kunden", "Lieferanten"]


def _landline(rnd: random.Random) -> str:
    area = rnd.choice(AREAS)
    style = rnd.randrange(4)
    local = str(rnd.randrange(100000, 9999999))
    if style == 0:
        return f"0{area} {local}"
    if style == 1:
        return f"+49 {area} {local}"
    if style == 2:
        return f"+49 {area} {local[:4]}-{rnd.randrange(0, 99)}"
    return f"(0{area}) {local}"


def _mobile(rnd: random.Random) -> str:
    prefix = rnd.choice(["151", "160", "170", "171", "172", "176", "1520"])
    number = str(rnd.randrange(1000000, 99999999))
    return f"0{prefix} {number}" if rnd.random() < 0.6 else f"+49 {prefix} {number}"


def make_rows(n: int, seed: int = 6) -> list[list[str]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        g, s = rnd.choice(GIVEN), rnd.choice(SURNAMES)
        company = rnd.choice(COMPANIES)
        rows.append([
            USERS[i % len(USERS)], BOOKS[(i // len(USERS)) % len(BOOKS)], f"c{i:06d}",
            f"{g} {s}", g, s, company, rnd.choice(["", "Vertrieb", "Einkauf", "IT"]),
            rnd.choice(["", "Leitung", "Sachbearbeitung"]),
            f"{g.lower()}.{s.lower()}{i}@example.de",
            _landline(rnd), _mobile(rnd) if rnd.random() < 0.7 else "",
            _landline(rnd) if rnd.random() < 0.2 else "",
            _landline(rnd) if rnd.random() < 0.1 else "",
        ])
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)


def fresh_db(url: str) -> Database:
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    database = Database(url)
    with database.session() as s:
        for u in USERS:
            add_user(s, u)
    return database


def report(label: str, result, total: float, rows: int) -> None:  # type: ignore[no-untyped-def]
    t = result.timings
    adds = sum(len(b.diff.adds) for b in result.books)
    upd = sum(len(b.diff.updates) for b in result.books)
    rem = sum(len(b.diff.removes) for b in result.books)
    print(f"{label}: parse {t['parse']:.2f} s, diff {t['diff']:.2f} s, write {t['write']:.2f} s,"
          f" total {total:.2f} s, {rows / total:,.0f} rows/s "
          f"({adds} added, {upd} updated, {rem} removed)")


def baseline(path: Path, rows: list[list[str]]) -> float:
    """The same entries and numbers with a bare sqlite3 executemany (no parse, no E.164)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, book TEXT, source_id TEXT, name TEXT,"
                " given TEXT, surname TEXT, company TEXT, dept TEXT, job TEXT, emails TEXT)")
    con.execute("CREATE TABLE n (id INTEGER PRIMARY KEY, entry_id INT, position INT, type TEXT,"
                " number TEXT)")
    t0 = time.perf_counter()
    con.executemany("INSERT INTO e VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(i, r[1], r[2], *r[3:10]) for i, r in enumerate(rows, 1)])
    con.executemany("INSERT INTO n (entry_id, position, type, number) VALUES (?,?,?,?)",
                    [(i, p, t, r[10 + p]) for i, r in enumerate(rows, 1)
                     for p, t in enumerate(HEADER[10:]) if r[10 + p]])
    con.commit()
    con.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="csvbench-"))
    url = args.db or f"sqlite:///{tmp / 'bench.db'}"
    rows = make_rows(args.rows)
    first, second = tmp / "contacts.csv", tmp / "contacts-1pct.csv"
    write_csv(first, rows)
    rnd = random.Random(7)
    changed = rnd.sample(range(len(rows)), len(rows) // 100)
    edited = [list(r) for r in rows]
    for i in changed:
        edited[i][11] = _mobile(rnd)  # a new mobile number: an update, not remove + add
    write_csv(second, edited)
    database = fresh_db(url)
    print(f"{args.rows} rows, {first.stat().st_size / 1e6:.1f} MB, database {url}")

    t0 = time.perf_counter()
    r1 = import_csv(database, first)
    report("first import", r1, time.perf_counter() - t0, args.rows)
    t0 = time.perf_counter()
    r2 = import_csv(database, second)
    report("re-import 1% changed", r2, time.perf_counter() - t0, args.rows)
    t0 = time.perf_counter()
    r3 = import_csv(database, second)
    report("re-import unchanged", r3, time.perf_counter() - t0, args.rows)
    database.dispose()

    base = baseline(tmp / "baseline.db", rows)
    first_total = sum(r1.timings.values())
    print(f"baseline (sqlite3 executemany of the same rows, no parsing): {base:.2f} s, "
          f"{args.rows / base:,.0f} rows/s; first import / baseline = {first_total / base:.1f}x")


if __name__ == "__main__":
    main()
