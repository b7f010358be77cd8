#!/usr/bin/env python3
"""Tenant-sized sync against the fake Exchange Online, side by side with a hand-written baseline.

    python benchmarks/tenant_sync.py [--size 200x500] [--size 1000x200] [--latency 0]
        [--latency 100] [--api ews] [--api graph] [--db sqlite] [--db mariadb]
        [--no-baseline] [--workers N] [--full-only] [--cold-fake] [--code DIR] [--json FILE]

The fake runs in this process; every sync runs as a child process (the real command line,
``ucware-contactsync sync``), so its wall time, peak RSS (wait4) and the requests it sent
(the fake's request log) are its own. Rows written are counted in the child by a SQLAlchemy
cursor hook (rowcount of every INSERT, UPDATE and DELETE). "cpu" is the CPU time of the sync
process and the number worker it starts (wait4), "writer" that of the sync's main thread
(start-up and the phonebook writer; wall time minus it is how long the writer waited), "fake"
this process's CPU meanwhile: at 0 ms the fake shares the machine's cores with the sync, and
these say who used them.

Each API is compared with its own baseline, what an admin would write by hand
(benchmarks/baselines.py): for Graph, ``GET /users/{m}/contacts?$top=100`` and its nextLinks
plus the subfolders; for EWS, exchangelib's ``.all()`` per folder; both then delete the
phonebook's entries and insert them all again. Every third mailbox has contact subfolders.

The fake is warmed up first: each client (ours per API, each baseline) reads the whole tenant
once, untimed, into a scratch database, so the fake has rendered every contact in the shape
that client asks for. Exchange Online's rendering does not run on the sync's machine; the
fake's does, on the same two cores, and in a cold first sync it took about a fifth of all the
CPU (``--cold-fake``: without the warm-up, as before 2026-12-01). Every timed request is still
served over HTTPS by the fake; its CPU during the timed run is printed as "fake".

``--code DIR`` runs the sync (its set-up of the database, the run and the digest) with the
package of DIR, a git worktree of an earlier commit, against this tree's fake and tenant: on a
machine whose speed changes by the hour, back-to-back pairs of old and new code on the same
input are the fair comparison (docs/performance.md). The digest differs where the E.164 rules
changed in between; the number of entries does not.

Per size, database and latency: the first (full) sync of each API and its baseline, then 1%
of the contacts change (5% of the contacts in a fifth of the mailboxes), then the nightly run
of each API and its baseline again, then each API once more with nothing changed. Ratios are
baseline time / our time from this one run. Requests count Graph sub-requests one each;
round trips count HTTP requests (a $batch once).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The package the syncs run with (--code, passed to the children as BENCH_CODE): this tree's,
# or an earlier commit's worktree. The fake always comes from this tree.
CODE = Path(os.environ.get("BENCH_CODE") or ROOT)
sys.path.insert(0, str(ROOT))
if CODE != ROOT:  # a child of --code
    sys.path.insert(0, str(CODE))

SERVERS = {
    "mariadb": os.environ.get("BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306"),
    "postgresql": os.environ.get("BENCH_POSTGRESQL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
}


# -- children -------------------------------------------------------------------------------

def _count_rows(out: Path) -> None:
    """Count rows written by this process; dump them to ``out`` at exit."""
    import atexit

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts = {"rows": 0, "statements": 0}

    @event.listens_for(Engine, "after_cursor_execute")
    def statement(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            counts["statements"] += 1  # what crosses the wire: one per round trip
            if context.compiled is None:  # db.insert_many: driver SQL, no after_execute
                counts["rows"] += len(parameters) if executemany else 1

    @event.listens_for(Engine, "after_execute")
    def rows(conn, clause, multiparams, params, options, result):  # type: ignore[no-untyped-def]
        if getattr(clause, "is_insert", False):
            counts["rows"] += len(multiparams) if multiparams else 1
        elif getattr(clause, "is_update", False) or getattr(clause, "is_delete", False):
            counts["rows"] += max(result.rowcount, 0)

    def dump() -> None:
        # VmHWM is this program's own peak; wait4's ru_maxrss would also count the parent's
        # pages between fork and exec (the parent holds the whole fake tenant).
        status = Path("/proc/self/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        counts["rss_kb"] = int(hwm.split()[1])
        counts["exchangelib"] = "exchangelib" in sys.modules
        # The main thread is the phonebook writer (plus start-up): its CPU against the wall
        # time shows how long it waited (for the interpreter lock, a core, or reads).
        counts["writer_cpu"] = time.thread_time()
        out.write_text(json.dumps(counts))

    atexit.register(dump)


def child_ours(url: str, out: Path) -> int:
    _count_rows(out)
    from ucware_contactsync.cli import main

    return main(["--db", url, "sync"])


def child_baseline(api: str, url: str, out: Path) -> int:
    """The hand-written sync of ``api`` (benchmarks/baselines.py)."""
    _count_rows(out)
    from benchmarks import baselines

    return baselines.naive_graph(url) if api == "graph" else baselines.naive_ews(url)


def bench_tenant(n_mbx: int, per: int, seed: int = 7):  # type: ignore[no-untyped-def]
    """``n_mbx`` mailboxes of ``per`` contacts; every third has contact subfolders (Kunden with
    a nested Archiv, and Lieferanten) holding about a quarter of its contacts."""
    from ucware_contactsync.testing import Tenant
    from ucware_contactsync.testing.generator import random_contact_fields

    rng = random.Random(seed)
    tenant = Tenant(seed=seed)
    tenant.add_app(roles=("Contacts.Read", "full_access_as_app"))
    for m in range(n_mbx):
        mbx = tenant.add_mailbox(f"user{m:05d}@contoso.de")
        folders = []
        if m % 3 == 0:
            kunden = mbx.add_folder("Kunden")
            folders = [kunden, mbx.add_folder("Archiv", parent=kunden),
                       mbx.add_folder("Lieferanten")]
        for _ in range(per):
            target = rng.choice(folders) if folders and rng.random() < 0.25 else None
            mbx.add_contact(**random_contact_fields(rng), folder=target)
    return tenant


# -- the parent -----------------------------------------------------------------------------

PHASES = ("full", "nightly", "unchanged")


@dataclass
class Figures:
    label: str
    seconds: float
    contacts: int
    requests: int  # Graph sub-requests count one each, the $batch around them none
    round_trips: int  # HTTP requests (a $batch counts once; token requests included)
    rows: int
    statements: int
    rss_mb: float
    code: int
    mailboxes: int
    startup: float = 0.0  # s from the start of the process to its first request
    exchangelib: bool = False  # the process imported exchangelib
    cpu: float = 0.0  # CPU s (user + system) of the sync and the processes it started
    fake_cpu: float = 0.0  # CPU s of this process meanwhile: the fake, serving it
    writer_cpu: float = 0.0  # CPU s of the sync's main thread: start-up and the writer

    @property
    def per_second(self) -> float:
        return self.contacts / self.seconds if self.seconds else 0.0


def fresh_db(kind: str, tmp: Path) -> tuple[str, object]:
    """(url, cleanup) of a new empty database with the schema."""
    from sqlalchemy import create_engine, text

    from ucware_contactsync import db as dbmod

    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'{uuid.uuid4().hex[:8]}.db'}"
        drop = None
    else:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        base = SERVERS[kind]
        admin = f"{base}/test" if kind == "mariadb" else f"{base}/postgres"
        eng = create_engine(admin, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                           if kind == "mariadb" else f'CREATE DATABASE "{name}"'))
        url = f"{base}/{name}"

        def drop() -> None:
            with eng.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {name}" if kind == "mariadb"
                               else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            eng.dispose()
    if CODE != ROOT:
        in_code("upgrade", url)
    else:
        engine = dbmod.make_engine(url)
        dbmod.upgrade(engine)
        engine.dispose()
    return url, drop


def configure(url: str, tenant, fx, api: str, workers: int | None) -> None:  # type: ignore[no-untyped-def]
    values = {**fx.settings(), "api": api}
    if workers:
        values["max_workers"] = str(workers)
    if CODE != ROOT:
        in_code("configure", url, json.dumps([values, sorted(tenant.mailboxes)]))
    else:
        _configure(url, values, sorted(tenant.mailboxes))


def _configure(url: str, values: dict[str, str], emails: list[str]) -> None:
    from ucware_contactsync import directory
    try:
        from ucware_contactsync import settings_store
    except ImportError:  # --code before settings_store split from settings
        from ucware_contactsync import settings as settings_store  # type: ignore[no-redef]
    from ucware_contactsync.db import Database

    database = Database(url)
    with database.session() as s:
        for key, value in values.items():
            settings_store.set_value(s, key, value)
        directory.add_group(s, "G")
        directory.set_param(s, "G", "ews_synccontacts", "true")
        for email in emails:
            directory.add_user(s, email)
            directory.add_member(s, "G", email)
    database.dispose()


def in_code(*args: str) -> str:
    """Run ``args`` (see ``_in_code_main``) with the package of --code; its output."""
    done = subprocess.run([sys.executable, __file__, "--in-code", *args], text=True,
                          capture_output=True, env=dict(os.environ, PYTHONPATH=str(CODE)))
    if done.returncode:
        raise SystemExit(f"--code {CODE}: {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def _in_code_main(what: str, url: str, *rest: str) -> None:
    if what == "upgrade":
        from ucware_contactsync import db as dbmod

        engine = dbmod.make_engine(url)
        dbmod.upgrade(engine)
        engine.dispose()
    elif what == "configure":
        values, emails = json.loads(rest[0])
        _configure(url, values, emails)
    else:
        print(_entries(url))


def entries(url: str) -> str:
    """How many entries the phonebooks hold, and a digest of what they hold (ids and times
    aside): a faster build must give the same digest."""
    return in_code("entries", url) if CODE != ROOT else _entries(url)


def _entries(url: str) -> str:
    import hashlib

    from sqlalchemy import select

    from ucware_contactsync.db import Database
    from ucware_contactsync.model import Entry, Number, Phonebook, User

    d = Database(url)
    with d.session() as s:
        rows = s.execute(
            select(User.email, Phonebook.title, Entry.source_id, Entry.display_name,
                   Entry.given_name, Entry.surname, Entry.company, Entry.department,
                   Entry.job_title, Entry.emails, Entry.categories, Number.position,
                   Number.type, Number.number, Number.e164)
            .join(Phonebook, Phonebook.owner_id == User.id)
            .join(Entry, Entry.phonebook_id == Phonebook.id)
            .outerjoin(Number, Number.entry_id == Entry.id)
        ).all()
    d.dispose()
    n = len({(r[0], r[1], r[2]) for r in rows})
    digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()[:12]
    return f"{n} ({digest})"


def run_child(mode: str, url: str, fx, label: str, contacts: int, mailboxes: int) -> Figures:  # type: ignore[no-untyped-def]
    out = Path(tempfile.mktemp(suffix=".json"))
    env = dict(os.environ, CONTACTSYNC_SYSLOG="0", PYTHONPATH=str(CODE))
    before = len(fx.requests)
    spawned = time.monotonic()  # the fake's request log uses this clock
    own = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, url, str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read() if proc.stderr else ""
    # wait4: the child's CPU, including the number worker it started (and reaped).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF)
    fake_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    code = os.waitstatus_to_exitcode(status)
    if code not in (0,):
        print(f"    ! {label} exited {code}: {err.strip().splitlines()[-1:]}")
    counts = (json.loads(out.read_text()) if out.exists()
              else {"rows": -1, "statements": -1, "rss_kb": -1})
    out.unlink(missing_ok=True)
    recs = fx.requests[before:]
    return Figures(label, seconds, contacts, sum(1 for r in recs if r.operation != "$batch"),
                   sum(1 for r in recs if r.round_trip), counts["rows"], counts["statements"],
                   counts["rss_kb"] / 1024, code, mailboxes,
                   min((r.started for r in recs), default=spawned) - spawned,
                   bool(counts.get("exchangelib")), usage.ru_utime + usage.ru_stime, fake_cpu,
                   counts.get("writer_cpu", 0.0))


def show(f: Figures, base: Figures | None) -> None:
    ratio = f" {base.seconds / f.seconds:6.1f}x" if base and base is not f else "       "
    per_mbx = f.requests / f.mailboxes if f.mailboxes else 0
    trips = f.round_trips / f.mailboxes if f.mailboxes else 0
    print(f"  {f.label:<22} {f.seconds:8.1f} s{ratio} {f.per_second:8.0f}/s "
          f"{f.requests:7d} req ({per_mbx:4.1f}/mbx) {f.round_trips:6d} trips ({trips:4.2f}/mbx) "
          f"{f.rows:8d} rows {f.statements:6d} stmts {f.rss_mb:6.0f} MB "
          f"start {f.startup:4.1f} s cpu {f.cpu:5.1f} s (writer {f.writer_cpu:4.1f} s, "
          f"fake {f.fake_cpu:4.1f} s)"
          f"{' +exchangelib' if f.exchangelib else ''}")


def row(size: str, db_kind: str, latency: int, f: Figures, base: Figures | None) -> dict:
    return {"size": size, "db": db_kind, "latency_ms": latency, "run": f.label,
            "seconds": round(f.seconds, 2),
            "baseline_seconds": round(base.seconds, 2) if base else None,
            "requests": f.requests, "round_trips": f.round_trips, "rows": f.rows,
            "rss_mb": round(f.rss_mb), "exit": f.code, "startup_s": round(f.startup, 2),
            "cpu_s": round(f.cpu, 2), "fake_cpu_s": round(f.fake_cpu, 2),
            "writer_cpu_s": round(f.writer_cpu, 2),
            "exchangelib": f.exchangelib}


def bench(size: str, latencies: list[int], apis: list[str], dbs: list[str], baseline: bool,
          workers: int | None, phases: tuple[str, ...] = PHASES, warm: bool = True
          ) -> list[dict]:
    from ucware_contactsync.testing import FakeExchange, mutate

    n_mbx, per = (int(x) for x in size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-tenant-"))
    rows: list[dict] = []
    for db_kind in dbs:
        for latency in latencies:
            # A fresh tenant per group, so every group starts from the same data.
            tenant = bench_tenant(n_mbx, per)
            total = sum(1 for m in tenant.mailboxes.values() for i in m.all_items()
                        if i.kind == "contact")
            print(f"\n{n_mbx} mailboxes x {per} contacts ({total} contacts; subfolders in "
                  f"every third mailbox), {db_kind}, {latency} ms per request")
            print(f"  {'run':<22} {'wall':>10} {'vs base':>7} {'contacts':>10} "
                  f"{'requests':>18} {'round trips':>20} {'written':>13} {'':>11} "
                  f"{'peak RSS':>9}")
            with FakeExchange(tenant) as fx:
                urls: dict[str, str] = {}
                drops = []
                for who in [*apis, *([f"base-{a}" for a in apis] if baseline else [])]:
                    url, drop = fresh_db(db_kind, tmp)
                    configure(url, tenant, fx, who.removeprefix("base-"), workers)
                    urls[who] = url
                    drops.append(drop)
                    if warm:  # untimed, into a scratch database, at 0 ms: see the module doc
                        scratch, _ = fresh_db("sqlite", tmp)
                        configure(scratch, tenant, fx, who.removeprefix("base-"), workers)
                        run_child(who if who.startswith("base-") else "ours", scratch, fx,
                                  "warm-up", total, n_mbx)
                fx.faults.slow(latency / 1000)
                bases: dict[str, Figures] = {}
                for phase in phases:
                    if phase == "nightly":
                        rng = random.Random(3)
                        chosen = rng.sample(sorted(tenant.mailboxes), k=max(1, n_mbx // 5))
                        k = max(1, per // 60)  # 3 x per/60 = 5% of each chosen mailbox
                        mutate(tenant, seed=11, adds=k, updates=k, deletes=k, mailboxes=chosen)
                        print(f"  -- {3 * k * len(chosen)} contacts changed in {len(chosen)} "
                              "mailboxes")
                    for api in apis:
                        if baseline and phase != "unchanged":
                            # The baseline does the same work whatever changed: its nightly
                            # figure stands for the unchanged run too.
                            b = run_child(f"base-{api}", urls[f"base-{api}"], fx,
                                          f"base-{api} {phase}", total, n_mbx)
                            show(b, None)
                            rows.append(row(size, db_kind, latency, b, None))
                            bases[api] = b
                        f = run_child("ours", urls[api], fx, f"{api} {phase}", total, n_mbx)
                        show(f, bases.get(api))
                        rows.append(row(size, db_kind, latency, f, bases.get(api)))
                counts = {who: entries(u) for who, u in urls.items()}
                print(f"  entries in the phonebooks: {counts}")
                for drop in drops:
                    if drop:
                        drop()  # type: ignore[operator]
    return rows


def markdown(files: list[str]) -> None:
    """The table of docs/performance.md from the --json files of earlier runs."""
    rows = [r for f in files for r in json.loads(Path(f).read_text())]
    print("| size | db | latency | run | wall | its baseline | x faster | requests (per mailbox) "
          "| round trips (per mailbox) | rows written | peak RSS |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mbx = int(r["size"].split("x")[0])
        b, ours, trips = r.get("baseline_seconds"), r["seconds"], r.get("round_trips")
        print(f"| {r['size'].replace('x', ' × ')} | {r['db']} | {r['latency_ms']} ms "
              f"| {r['run']} | {ours:.1f} s | {f'{b:.1f} s' if b else ''} "
              f"| {f'{b / ours:.1f}' if b else ''} "
              f"| {r['requests']} ({r['requests'] / mbx:.1f}) "
              f"| {f'{trips} ({trips / mbx:.2f})' if trips is not None else ''} "
              f"| {r['rows']} | {r['rss_mb']} MB |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--markdown":
        markdown(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--in-code":
        _in_code_main(*sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, url, out = sys.argv[2:5]
        sys.exit(child_ours(url, Path(out)) if mode == "ours"
                 else child_baseline(mode.removeprefix("base-"), url, Path(out)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", action="append", help="MAILBOXESxCONTACTS (default 200x500)")
    p.add_argument("--latency", action="append", type=int, help="ms per request (default 0)")
    p.add_argument("--api", action="append", choices=("ews", "graph"))
    p.add_argument("--db", action="append", choices=("sqlite", "mariadb", "postgresql"))
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--workers", type=int, help="max_workers (default: the module's default)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--cold-fake", action="store_true",
                   help="no untimed warm-up read: the fake renders every contact in the timed "
                        "first sync, on the cores the sync uses")
    p.add_argument("--full-only", action="store_true",
                   help="only the first (full) sync of each API and baseline")
    p.add_argument("--code", metavar="DIR",
                   help="run the syncs with the package of DIR (a worktree of an earlier "
                        "commit) against this tree's fake: pairs of old and new code")
    a = p.parse_args()
    if a.code:
        global CODE
        CODE = Path(a.code).resolve()
        os.environ["BENCH_CODE"] = str(CODE)
    rows: list[dict] = []
    for size in a.size or ["200x500"]:
        rows += bench(size, a.latency or [0], a.api or ["ews", "graph"], a.db or ["sqlite"],
                      not a.no_baseline, a.workers, PHASES[:1] if a.full_only else PHASES,
                      not a.cold_fake)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
