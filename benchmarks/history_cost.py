#!/usr/bin/env python3
"""What the run history costs: the same syncs with history (history_days 30) and without
(history_days 0), side by side, against the fake Exchange Online.

    python benchmarks/history_cost.py [--size 1000x200] [--api graph] [--db sqlite]
        [--latency 0] [--rounds 1]

Per size and database: the first (full) sync, then 1 % of the contacts change (as in
tenant_sync.py), the nightly run, then a run with nothing changed. Each run is the real
command line in a child process (tenant_sync.py's child); both variants run from the same
tenant, one after the other, alternating which goes first. Printed per phase: wall time of
each variant, the difference in percent, rows written (history rows included) and the
history rows in the database afterwards. Besides wall time, the CPU time (user + system) of
each child: on a shared machine it varies far less with the load of other processes (the
database server's own CPU is not in it; with SQLite there is none).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
from pathlib import Path

import tenant_sync as ts


def history_rows(url: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from ucware_contactsync.db import Database
    from ucware_contactsync.model import Change, Run

    d = Database(url)
    with d.session() as s:
        out = (s.scalar(select(func.count()).select_from(Run)) or 0,
               s.scalar(select(func.count()).select_from(Change)) or 0)
    d.dispose()
    return out


def turn_off(url: str) -> None:
    from ucware_contactsync import settings_store
    from ucware_contactsync.db import Database

    d = Database(url)
    with d.session() as s:
        settings_store.set_value(s, "history_days", "0")
    d.dispose()


def bench(size: str, api: str, db_kind: str, latency: int, rounds: int) -> None:
    from ucware_contactsync.testing import FakeExchange, generate_tenant, mutate

    n_mbx, per = (int(x) for x in size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for rnd in range(rounds):
        tenant = generate_tenant(seed=7, mailboxes=n_mbx, contacts_per_mailbox=per,
                                 subfolders=0, roles=("Contacts.Read", "full_access_as_app"))
        total = sum(1 for m in tenant.mailboxes.values() for i in m.all_items()
                    if i.kind == "contact")
        print(f"\n{n_mbx} x {per} ({total} contacts), {api}, {db_kind}, {latency} ms, "
              f"round {rnd + 1}")
        with FakeExchange(tenant) as fx:
            fx.faults.slow(latency / 1000)
            urls, drops = {}, []
            for variant in ("history", "no history"):
                url, drop = ts.fresh_db(db_kind, tmp)
                ts.configure(url, tenant, fx, api, None)
                if variant == "no history":
                    turn_off(url)
                urls[variant] = url
                drops.append(drop)
            for i, phase in enumerate(("full", "nightly", "unchanged")):
                if phase == "nightly":
                    rng = random.Random(3)
                    chosen = rng.sample(sorted(tenant.mailboxes), k=max(1, n_mbx // 5))
                    k = max(1, per // 60)
                    mutate(tenant, seed=11, adds=k, updates=k, deletes=k, mailboxes=chosen)
                order = list(urls) if (i + rnd) % 2 == 0 else list(reversed(urls))
                figs = {}
                used = {}
                for variant in order:
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    figs[variant] = ts.run_child("ours", urls[variant], fx,
                                                 f"{variant} {phase}", total, n_mbx)
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    used[variant] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                    times.setdefault((phase, variant), []).append(figs[variant].seconds)
                    cpu.setdefault((phase, variant), []).append(used[variant])
                on, off = figs["history"], figs["no history"]
                runs, changes = history_rows(urls["history"])
                print(f"  {phase:<9} wall: history {on.seconds:7.1f} s, none {off.seconds:7.1f} s "
                      f"({(on.seconds / off.seconds - 1) * 100:+5.1f} %)   cpu: history "
                      f"{used['history']:7.1f} s, none {used['no history']:7.1f} s "
                      f"({(used['history'] / used['no history'] - 1) * 100:+5.1f} %)   "
                      f"rows written {on.rows} / {off.rows}; history in the database: "
                      f"{runs} runs, {changes} changes")
            for drop in drops:
                if drop:
                    drop()  # type: ignore[operator]
    if rounds > 1:
        print("\nmedian over rounds:")
        for phase in ("full", "nightly", "unchanged"):
            on = statistics.median(times[(phase, "history")])
            off = statistics.median(times[(phase, "no history")])
            c_on = statistics.median(cpu[(phase, "history")])
            c_off = statistics.median(cpu[(phase, "no history")])
            print(f"  {phase:<9} wall {on:7.1f} s vs {off:7.1f} s ({(on / off - 1) * 100:+5.1f} %)"
                  f"   cpu {c_on:7.1f} s vs {c_off:7.1f} s ({(c_on / c_off - 1) * 100:+5.1f} %)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1000x200", help="MAILBOXESxCONTACTS (default 1000x200)")
    p.add_argument("--api", default="graph", choices=("ews", "graph"))
    p.add_argument("--db", default="sqlite", choices=("sqlite", "mariadb", "postgresql"))
    p.add_argument("--latency", type=int, default=0, help="ms per request (default 0)")
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args()
    bench(a.size, a.api, a.db, a.latency, a.rounds)


if __name__ == "__main__":
    main()
