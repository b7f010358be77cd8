#!/usr/bin/env python3
"""A 10,000-mailbox nightly run over Microsoft Graph against the in-process fake.

    python benchmarks/tenant_10k.py [--mailboxes 10000] [--contacts 10] [--latency 100]
        [--changed 1] [--db sqlite] [--workers N] [--json FILE]

The tenant (benchmarks/tenant_sync.py: ``bench_tenant``, subfolders in every third
mailbox) is synced once in full without latency (setup, reported but not the point); then
``--changed`` percent of the mailboxes get one added, one changed and one deleted contact,
the fake waits ``--latency`` ms before every answer, and the nightly run is measured: wall
time, requests (Graph sub-requests) and HTTP round trips per mailbox, peak RSS of the sync
process. The sync is the real command line in a child process, as in tenant_sync.py.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tenant_sync import (  # noqa: E402 - after the path is set
    bench_tenant,
    configure,
    entries,
    fresh_db,
    run_child,
    show,
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mailboxes", type=int, default=10_000)
    p.add_argument("--contacts", type=int, default=10, help="per mailbox")
    p.add_argument("--latency", type=int, default=100, help="ms per request, nightly run")
    p.add_argument("--changed", type=float, default=1.0, help="percent of mailboxes changed")
    p.add_argument("--db", default="sqlite", choices=("sqlite", "mariadb", "postgresql"))
    p.add_argument("--workers", type=int)
    p.add_argument("--json")
    a = p.parse_args()

    from ucware_contactsync.testing import FakeExchange, mutate

    t = time.perf_counter()
    tenant = bench_tenant(a.mailboxes, a.contacts)
    total = sum(len(m.items) for m in tenant.mailboxes.values())
    print(f"{a.mailboxes} mailboxes x {a.contacts} contacts ({total} contacts), {a.db}; "
          f"tenant built in {time.perf_counter() - t:.0f} s")
    rows = []
    with FakeExchange(tenant) as fx:
        url, drop = fresh_db(a.db, Path(tempfile.mkdtemp(prefix="bench-10k-")))
        configure(url, tenant, fx, "graph", a.workers)
        full = run_child("ours", url, fx, "graph full, 0 ms", total, a.mailboxes)
        show(full, None)
        chosen = random.Random(5).sample(sorted(tenant.mailboxes),
                                         k=max(1, round(a.mailboxes * a.changed / 100)))
        mutate(tenant, seed=17, adds=1, updates=1, deletes=1, mailboxes=chosen)
        fx.faults.slow(a.latency / 1000)
        nightly = run_child("ours", url, fx, f"graph nightly, {a.latency} ms", total,
                            a.mailboxes)
        show(nightly, None)
        print(f"  {len(chosen)} mailboxes changed; entries: {entries(url)}")
        for f in (full, nightly):
            rows.append({"mailboxes": a.mailboxes, "contacts": a.contacts, "db": a.db,
                         "run": f.label, "seconds": round(f.seconds, 1),
                         "requests": f.requests, "round_trips": f.round_trips,
                         "requests_per_mailbox": round(f.requests / a.mailboxes, 2),
                         "round_trips_per_mailbox": round(f.round_trips / a.mailboxes, 3),
                         "rss_mb": round(f.rss_mb), "exit": f.code})
        if drop:
            drop()  # type: ignore[operator]
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
