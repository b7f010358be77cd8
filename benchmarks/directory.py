#!/usr/bin/env python3
"""Benchmark of the directory phonebook against the fake Exchange Online (prints figures).

    python benchmarks/directory.py [--accounts 10000] [--db URL]

Through the command line (``sync``), with no personal mailbox selected: the first sync of a
directory of N enabled accounts with numbers, an unchanged nightly run, and a run after 1% of
the accounts changed their mobile number. Per run: Graph requests, wall time and the rows the
run wrote (entries added + updated + removed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ucware_contactsync import db as dbmod  # noqa: E402
from ucware_contactsync.cli import main  # noqa: E402
from ucware_contactsync.db import Database  # noqa: E402
from ucware_contactsync.testing import FakeExchange, Tenant  # noqa: E402

_COUNTS = re.compile(r"(\d+) added, (\d+) updated, (\d+) removed")


def cli(url: str, *argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--db", url, *argv])
    return code, err.getvalue()


def main_(accounts: int, url: str | None) -> None:
    tenant = Tenant(seed=7)
    tenant.add_app(roles=("Contacts.Read", "User.Read.All"))
    d = tenant.directory
    for i in range(accounts):
        d.add_user(f"user{i:05d}@contoso.de", given_name=f"Vorname{i}", surname=f"Nach{i}",
                   business_phones=[f"+49 89 {1000000 + i}"], mobile=f"+49 171 {2000000 + i}",
                   job_title="Sachbearbeitung", department=f"Abteilung {i % 40}",
                   company="Contoso GmbH")
    url = url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-dir-')) / 'bench.db'}"
    dbmod.upgrade(Database(url).engine)
    with FakeExchange(tenant) as fx:
        for key, value in {**fx.settings(), "api": "graph", "directory_phonebook": "Firma"
                           }.items():
            assert cli(url, "config", "set", key, value)[0] == 0
        print(f"directory phonebook, {accounts} accounts, {url.split(':')[0]}")

        def run(label: str) -> None:
            fx.clear_requests()
            t = time.perf_counter()
            code, err = cli(url, "sync", "-v")
            wall = time.perf_counter() - t
            assert code == 0, err
            line = next(x for x in err.splitlines() if "'Firma' (directory)" in x)
            rows = sum(int(n) for n in _COUNTS.search(line).groups())  # type: ignore[union-attr]
            graph = len([r for r in fx.requests_for("graph")])
            print(f"  {label:<28} {graph:>4} Graph requests  {wall:6.2f} s  "
                  f"{rows:>6} rows written")

        run("first sync")
        run("unchanged nightly")
        for i in range(0, accounts, 100):
            d.update(f"user{i:05d}@contoso.de", mobilePhone=f"+49 172 {3000000 + i}")
        run("1% new mobile numbers")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=10000)
    p.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    a = p.parse_args()
    main_(a.accounts, a.db)
