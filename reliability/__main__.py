"""python3 -m reliability [--db sqlite|mariadb|postgresql|URL ...] [--full] [--only SUBSTRING]

Runs every case of reliability/network.py, reliability/nothing_lost.py and
reliability/process.py, each on a fresh
database per backend (SQLite in a scratch directory; a new database on the MariaDB /
PostgreSQL server, dropped afterwards), and prints one table row per case and backend:
the fault, the backend, what happened, what was lost. Exit 1 if any row failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .common import Case, Outcome
from .databases import backend_of, fresh_database


def load_cases() -> list[Case]:
    from .network import CASES as network
    from .nothing_lost import CASES as nothing_lost

    cases = list(network) + list(nothing_lost)
    try:
        from .process import CASES as process
    except ModuleNotFoundError as exc:  # written in parallel; the table works without it
        if exc.name != "reliability.process":
            raise
        print("(reliability/process.py not found: process faults left out)", file=sys.stderr)
    else:
        cases += process
    from .signals import CASES as signals

    return cases + signals


def run_one(case: Case, spec: str, scratch: Path, full: bool) -> tuple[Outcome, float]:
    started = time.monotonic()
    try:
        with fresh_database(spec, scratch) as url:
            outcome = case.run(url, scratch, full)
    except Exception as exc:  # noqa: BLE001 - a crashing case is a failed row, not a stop
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        outcome = Outcome(f"the case crashed: {detail}", "unknown", ok=False)
    return outcome, time.monotonic() - started


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m reliability", description=__doc__.split(
        "\n\n")[1] if __doc__ else None)
    parser.add_argument("--db", action="append", metavar="BACKEND|URL",
                        help="sqlite, mariadb, postgresql or a server URL such as "
                             "mysql+pymysql://root@127.0.0.1:3306 (repeatable; default sqlite)")
    parser.add_argument("--full", action="store_true",
                        help="the long matrix: more data, production back-offs, more repeats")
    parser.add_argument("--only", metavar="SUBSTRING",
                        help="only cases whose name or fault contains this")
    args = parser.parse_args(argv)
    specs = args.db or ["sqlite"]
    for spec in specs:
        try:
            backend_of(spec)
        except Exception:  # noqa: BLE001 - any parse error of the URL
            parser.error(f"--db {spec!r}: not sqlite, mariadb, postgresql or a database URL")

    cases = load_cases()
    if args.only:
        cases = [c for c in cases if args.only.lower() in f"{c.name} {c.fault}".lower()]
        if not cases:
            parser.error(f"no case matches --only {args.only!r}")

    rows: list[tuple[str, str, Outcome, float]] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        os.environ.setdefault("CONTACTSYNC_STATE_DIR", str(Path(tmp) / "state"))
        os.environ["CONTACTSYNC_SYSLOG"] = "0"
        for case in cases:
            for spec in specs:
                backend = backend_of(spec)
                if backend not in case.backends:
                    continue
                scratch = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=tmp))
                outcome, seconds = run_one(case, spec, scratch, args.full)
                mark = "ok" if outcome.passed else "FAILED"
                print(f"{mark:6} {case.name} on {backend} ({seconds:.1f} s)", file=sys.stderr,
                      flush=True)
                rows.append((case.fault, backend, outcome, seconds))

    print("| fault | backend | what happened | what was lost | result |")
    print("|---|---|---|---|---|")
    for fault, backend, outcome, _seconds in rows:
        print(f"| {cell(fault)} | {backend} | {cell(outcome.happened)} | {cell(outcome.lost)} "
              f"| {'ok' if outcome.passed else '**FAILED**'} |")
    failed = sum(1 for *_, o, _s in rows if not o.passed)
    total = sum(s for *_, s in rows)
    print(f"\n{len(rows)} rows, {failed} failed, {total:.0f} s", file=sys.stderr)
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
