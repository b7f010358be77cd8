"""Benchmark: full read of one big mailbox through the fake Exchange, via EWS and via Graph.

    python benchmarks/fake_exchange.py [--contacts 10000] [--repeat 1]

EWS: real exchangelib, FindItem (ids) + GetItem in chunks with the sync's fields.
Graph: plain requests, ``$top`` paging of /contacts and ``delta`` paging (maxpagesize 200).
"server" is the time spent inside the fake's request handlers (sum over requests): if it is
small next to the wall time, the client side is the bottleneck, not the fake.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from exchangelib.protocol import close_connections

from ucware_contactsync.testing import FakeExchange, generate_tenant
from ucware_contactsync.testing.clients import EWS_FIELDS, ews_account, graph_session


def timed(label: str, fx: FakeExchange, n_expected: int, fn: Callable[[], int]) -> None:
    fx.clear_requests()
    t = time.perf_counter()
    n = fn()
    wall = time.perf_counter() - t
    server = sum(r.duration for r in fx.requests)
    assert n == n_expected, (label, n, n_expected)
    print(f"{label:<44} {n:>6} contacts {wall:7.2f} s {n / wall:9.0f} contacts/s   "
          f"requests {len(fx.requests):>4}  server {server:5.2f} s ({server / wall:4.0%})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--contacts", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)

    t = time.perf_counter()
    tenant = generate_tenant(seed=42, mailboxes=1, contacts_per_mailbox=args.contacts,
                             subfolders=0, distribution_lists=0)
    mbx = next(iter(tenant.mailboxes.values()))
    print(f"generated {len(mbx.items)} contacts in {time.perf_counter() - t:.2f} s")
    n = len(mbx.contacts.items)

    with FakeExchange(tenant) as fx:
        def ews(page_size: int, chunk_size: int) -> Callable[[], int]:
            def run() -> int:
                acc = ews_account(fx, mbx.smtp)
                qs = acc.contacts.all().only(*EWS_FIELDS)
                qs.page_size, qs.chunk_size = page_size, chunk_size
                count = sum(1 for _ in qs)
                close_connections()
                return count
            return run

        def graph_list(top: int) -> Callable[[], int]:
            def run() -> int:
                s = graph_session(fx)
                url: str | None = (f"{fx.graph_url}/v1.0/users/{mbx.smtp}/contacts?$top={top}"
                                   "&$select=displayName,givenName,surname,companyName,"
                                   "department,jobTitle,emailAddresses,businessPhones,"
                                   "homePhones,mobilePhone,categories")
                count = 0
                while url:
                    body: dict[str, Any] = s.get(url, timeout=60).json()
                    count += len(body["value"])
                    url = body.get("@odata.nextLink")
                return count
            return run

        def graph_delta() -> int:
            s = graph_session(fx)
            url: str | None = f"{fx.graph_url}/v1.0/users/{mbx.smtp}/contacts/delta"
            count = 0
            while url:
                body: dict[str, Any] = s.get(url, headers={"Prefer": "odata.maxpagesize=200"},
                                             timeout=60).json()
                count += len(body["value"])
                url = body.get("@odata.nextLink")
            return count

        for round_ in range(args.repeat):
            tag = f" (run {round_ + 1})" if args.repeat > 1 else ""
            timed(f"EWS FindItem+GetItem page 100/chunk 100{tag}", fx, n, ews(100, 100))
            timed(f"EWS FindItem+GetItem page 1000/chunk 250{tag}", fx, n, ews(1000, 250))
            timed(f"Graph /contacts $top=1000{tag}", fx, n, graph_list(1000))
            timed(f"Graph /contacts $top=100{tag}", fx, n, graph_list(100))
            timed(f"Graph /contacts/delta maxpagesize=200{tag}", fx, n, graph_delta)


if __name__ == "__main__":
    main()
