"""Phone normalisation benchmark (not a test): ``to_e164`` per number, cache cleared.

    python benchmarks/phone_numbers.py [--mailboxes 40] [--contacts 200] [--region DE]

Takes every number of the generated tenant (``generate_tenant(seed=1, ...)``, the tenant the
sync benchmarks use), clears ``to_e164``'s cache and normalises them all, as a first full
sync does; best of ``--repeat`` runs. Prints µs per distinct number and a digest of the
results, so two versions of phone.py can be checked to give the same E.164s.
"""

from __future__ import annotations

import argparse
import hashlib
import time

from ucware_contactsync.phone import to_e164
from ucware_contactsync.testing import generate_tenant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mailboxes", type=int, default=40)
    ap.add_argument("--contacts", type=int, default=200)
    ap.add_argument("--region", default="DE")
    ap.add_argument("--area-code", default="")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tenant = generate_tenant(seed=1, mailboxes=args.mailboxes,
                             contacts_per_mailbox=args.contacts)
    numbers = [n for mbx in tenant.mailboxes.values() for item in mbx.items.values()
               for n in item.numbers.values()]
    best, out = float("inf"), []
    for _ in range(args.repeat):
        to_e164.cache_clear()
        start = time.perf_counter()
        out = [to_e164(n, args.region, args.area_code) for n in numbers]
        best = min(best, time.perf_counter() - start)
    distinct = len(set(numbers))
    digest = hashlib.sha1(repr(out).encode()).hexdigest()[:12]
    print(f"{len(numbers)} numbers ({distinct} distinct): best of {args.repeat} "
          f"{best * 1000:.0f} ms, {best / distinct * 1e6:.1f} µs per distinct number; "
          f"{sum(e is not None for e in out)} with E.164; results {digest}")


if __name__ == "__main__":
    main()
