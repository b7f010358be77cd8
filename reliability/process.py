"""Process faults and concurrency: the real program (``python -m ucware_contactsync``) as a
child process against the fake Exchange Online, killed with SIGKILL in the write phase, its
database server killed under it, its SQLite disk full, and two runs started at once.

Every case checks the same promises as the network cases: each phonebook is in its old or
its fully updated state (never between), hand-typed and CSV entries are untouched, and the
next run completes (exit 0) with every phonebook equal to its mailbox. Suite size: a handful
of kills and pairs; ``full``: 60 kills, 40 pairs.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import statistics
import subprocess
import threading
import time
from pathlib import Path

from ucware_contactsync.sync.lock import lock_path
from ucware_contactsync.testing import generate_tenant, mutate

from . import child
from .common import Case, Outcome, Snapshot, by_origin, history_mismatch, last_run, lost
from .lab import CSV_BOOK, Lab, short
from .probe import WriteProbe

TITLE = "Privat"
HAND = ("manual", "csv")
GRAPH = ("Contacts.Read",)


class Unavailable(RuntimeError):
    """What a case needs is missing here (no mariadbd, cannot mount): the suite skips the
    case, or fails it when CONTACTSYNC_REQUIRE_ALL_DB=1."""


def _verdict(happened: str, problems: list[str], damage: list[str]) -> Outcome:
    if problems:
        happened += " — NOT OK: " + "; ".join(problems[:4]) + (" ..." if len(problems) > 4
                                                               else "")
    return Outcome(happened, "; ".join(damage[:3]) or "nothing", ok=not problems)


def _aftermath(lab: Lab, old: Snapshot, mid: Snapshot, label: str) -> tuple[Snapshot,
                                                                               list[str],
                                                                               list[str]]:
    """The next run after a fault: (its snapshot, problems, damage). ``mid`` is the database
    right after the fault; every phonebook must be in its ``old`` state or in the state the
    next run leaves, hand-typed and CSV entries as in ``old``."""
    heal = lab.sync()
    new = lab.snap()
    problems: list[str] = []
    damage: list[str] = []
    if heal.code != 0:
        problems.append(f"{label}: the next run gave exit {heal.code}: {short(heal.headline)}")
    half = lost(mid, old, new)
    if half != "nothing":
        damage.append(f"{label}: half-written: {half}")
    for name, snap in (("after the fault", mid), ("after the next run", new)):
        if by_origin(snap, HAND) != by_origin(old, HAND):
            damage.append(f"{label}: hand-typed or CSV entries changed {name}")
    differs = lab.mismatch(new)
    if differs:
        damage.append(f"{label}: after the next run: {differs}")
    return new, problems, damage


# -- 1. SIGKILL at random points of the write phase ----------------------------------------------

def kill_mid_write(db_url: str, workdir: Path, full: bool) -> Outcome:
    """Kill ``sync`` with SIGKILL after k users' phonebooks have committed (k random, the
    delay after the k-th commit random within one user's write), then run it again."""
    rng = random.Random(1126)
    kills = 60 if full else 4
    tenant = generate_tenant(seed=31, mailboxes=5, contacts_per_mailbox=200, roles=GRAPH)
    problems: list[str] = []
    damage: list[str] = []
    counts = {"in_txn": 0, "between": 0, "before": 0, "last": 0, "ended": 0}
    # Seconds from "using ..." to the first commit, and between two commits; refined by
    # what each round shows.
    first, gap = 0.6, 0.05
    with Lab(db_url, workdir, tenant) as lab, WriteProbe(db_url) as probe:
        if lab.sync().code != 0:
            return Outcome("the healthy first run failed", "not tested", ok=False)
        lab.add_other_origins()
        users = sorted(tenant.mailboxes)
        new = lab.snap()
        for k in range(kills):
            # Large edits (half of each mailbox) so that every write takes a while.
            mutate(tenant, seed=100 + k, adds=40, updates=60, deletes=40)
            old = new  # the database has not changed since the last snapshot
            runs_before = last_run(db_url)
            proc = child.start(db_url, "-v", "sync")
            committed = rng.randrange(len(users))  # users written before the kill
            if committed == 0:
                seen = proc.wait_line(child.is_using_line)
                delay = rng.uniform(0, first + gap)
            else:
                seen = proc.wait_line(child.is_user_line, count=committed)
                delay = rng.uniform(0, gap * 1.2)
            if seen is not None:
                time.sleep(delay)
            in_txn = proc.popen.poll() is None and probe.writing()
            proc.kill()
            res = proc.finish()
            mid = lab.snap()
            done = [ln.split(":", 1)[0] for ln in res.lines if child.is_user_line(ln)]
            using = [t for t, ln in proc.lines if child.is_using_line(ln)]
            commits = [t for t, ln in proc.lines if child.is_user_line(ln)]
            if using and commits:
                first = commits[0] - using[0]
            if len(commits) > 1:
                gap = statistics.median(b - a for a, b in zip(commits, commits[1:], strict=False))
            label = f"kill {k + 1}"
            # The run history holds exactly what committed: replayed on the old state, its
            # changes give the phonebooks as the kill left them.
            disagree = history_mismatch(db_url, old, mid, runs_before)
            if disagree != "nothing":
                damage.append(f"{label}: the run history disagrees with {disagree}")
            if res.code != -9:
                counts["ended"] += 1
                if res.code != 0:
                    problems.append(f"{label}: not killed, yet exit {res.code}: "
                                    f"{short(res.headline)}")
            elif in_txn:
                counts["in_txn"] += 1
            elif not done:
                counts["before"] += 1
            elif len(done) < len(users):
                counts["between"] += 1
            else:
                counts["last"] += 1
            new, more, worse = _aftermath(lab, old, mid, label)
            problems += more
            damage += worse
            # A user line is printed after the commit: that phonebook must be the new one.
            for email in done:
                if mid.get((email, TITLE)) != new.get((email, TITLE)):
                    damage.append(f"{label}: {email} was reported written but is not")
    hit = counts["between"] + counts["in_txn"]
    if not hit:
        problems.append("no kill landed in the write phase")
    happened = (f"{kills} kills: {counts['in_txn']} inside an open write transaction, "
                f"{counts['between']} between two users' commits, {counts['before']} before "
                f"the first commit, {counts['last']} after the last, {counts['ended']} too "
                f"late (run ended); each next run exit 0")
    return _verdict(happened, problems, damage)


# -- 4. two runs at once ------------------------------------------------------------------------

def _mirrors(lab: Lab, snap: Snapshot, email: str) -> bool:
    """This user's synced phonebook equals the mailbox (the rest of ``snap`` ignored)."""
    return not any(part.startswith(f"{email}: ") for part in lab.mismatch(snap).split("; "))


def _csv_version(lab: Lab, n: int) -> tuple[Path, set[str]]:
    """A new version of the CSV phonebook: (file, the display names it must leave)."""
    owner = sorted(lab.tenant.mailboxes)[0]
    names = {f"Kunde {n}-{j}" for j in range(2 + n % 3)}
    path = lab.workdir / f"kunden-{n}.csv"
    rows = [f"{owner},{CSV_BOOK},v{n}r{j},Kunde {n}-{j},0911 {n:03d}{j:04d}"
            for j in range(len(names))]
    path.write_text("owner,phonebook,id,display_name,business\n" + "\n".join(rows) + "\n",
                    encoding="utf-8")
    return path, names


def _csv_names(snap: Snapshot, owner: str) -> set[str]:
    return {e[2] for e in snap.get((owner, CSV_BOOK), ()) if e[0] == "csv"}


class LockWatch:
    """Polls the run lock's file every millisecond and keeps every pid it names: RunLock
    writes its pid there when it takes the lock (and empties it when done), so a run that
    wrote without taking the lock is caught even when it happened not to collide."""

    def __init__(self, db_url: str) -> None:
        self.path = lock_path(db_url)
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> LockWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                pid = self.path.read_text().strip()
            except OSError:
                pid = ""
            if pid:
                self.seen.add(pid)
            time.sleep(0.001)


def _loser_problems(label: str, res: child.Result, winner: child.Proc) -> list[str]:
    """A run that found the lock taken: exit 75, one line naming the holder, no traceback."""
    want = f"error: another sync is running (pid {winner.pid}, lock "
    if res.lines and res.lines[0].startswith(want) and len(res.lines) == 1 \
            and "this run changed nothing" in res.lines[0]:
        return []
    return [f"{label}: the run that lost the lock said {short(res.err, 160)!r}"]


def concurrent_runs(db_url: str, workdir: Path, full: bool) -> Outcome:
    """The nightly ``sync`` and a manual ``sync --user X`` or ``import-csv`` started in the
    same instant, many times. Never both write: one exits 75 naming the other's pid and
    changes nothing, the other does all of its work; or they run one after the other."""
    pairs = 40 if full else 4
    tenant = generate_tenant(seed=32, mailboxes=3, contacts_per_mailbox=100, roles=GRAPH)
    problems: list[str] = []
    damage: list[str] = []
    collided = serial = 0
    with Lab(db_url, workdir, tenant) as lab:
        if lab.sync().code != 0:
            return Outcome("the healthy first run failed", "not tested", ok=False)
        lab.add_other_origins()
        users = sorted(tenant.mailboxes)
        owner = users[0]
        # Slow answers keep a sync's lock held for a second or more, so that two runs
        # started together really meet at the lock.
        lab.fx.faults.slow(0.05)
        mid = lab.snap()
        for n in range(pairs):
            label = f"pair {n + 1}"
            mutate(tenant, seed=300 + n, adds=5, updates=5, deletes=3)
            old = mid  # the database has not changed since the last snapshot
            user = users[n % len(users)]
            csv, names = _csv_version(lab, n)
            manual_argv = (("sync", "--user", user) if n % 2 == 0
                           else ("import-csv", str(csv)))
            nightly_args = ("-v", "sync")
            # Who is started first alternates, so either may win the lock.
            with LockWatch(db_url) as watch:
                if n % 4 < 2:
                    nightly = child.start(db_url, *nightly_args)
                    manual = child.start(db_url, *manual_argv)
                else:
                    manual = child.start(db_url, *manual_argv)
                    nightly = child.start(db_url, *nightly_args)
                rn, rm = nightly.finish(), manual.finish()
            mid = lab.snap()
            codes = (rn.code, rm.code)
            if not set(codes) <= {0, 75} or codes == (75, 75):
                problems.append(f"{label}: exit codes {codes}: nightly "
                                f"{short(rn.headline)!r}, manual {short(rm.headline)!r}")
                continue
            if 75 in codes:
                collided += 1
            else:
                serial += 1
            for who, proc, res in (("nightly", nightly, rn), ("manual", manual, rm)):
                if res.code == 0 and str(proc.pid) not in watch.seen:
                    problems.append(f"{label}: the {who} run wrote without taking the lock")
            if rn.code == 75:
                problems += _loser_problems(label, rn, manual)
            if rm.code == 75:
                problems += _loser_problems(label, rm, nightly)
            # The winner did all of its work ...
            if rn.code == 0 and lab.mismatch(mid):
                damage.append(f"{label}: the nightly run exited 0 but: {lab.mismatch(mid)}")
            if rm.code == 0 and manual_argv[0] == "sync" and not _mirrors(lab, mid, user):
                damage.append(f"{label}: sync --user {user} exited 0 but its phonebook "
                              "differs from the mailbox")
            if rm.code == 0 and manual_argv[0] == "import-csv" and \
                    _csv_names(mid, owner) != names:
                damage.append(f"{label}: import-csv exited 0 but {CSV_BOOK} holds "
                              f"{sorted(_csv_names(mid, owner))}")
            # ... and the loser nothing.
            if rn.code == 75:
                untouched = {k: v for k, v in old.items()
                             if k[1] == TITLE and not (manual_argv[0] == "sync" and k[0] == user)}
                if any(mid.get(k) != v for k, v in untouched.items()):
                    damage.append(f"{label}: the nightly run exited 75 but phonebooks changed")
            if rm.code == 75 and manual_argv[0] == "import-csv" and \
                    mid.get((owner, CSV_BOOK)) != old.get((owner, CSV_BOOK)):
                damage.append(f"{label}: import-csv exited 75 but {CSV_BOOK} changed")
            if by_origin(mid, ("manual",)) != by_origin(old, ("manual",)):
                damage.append(f"{label}: hand-typed entries changed")
            # Every synced phonebook is old or mirrors its mailbox: nothing half-written.
            for email in users:
                if mid.get((email, TITLE)) != old.get((email, TITLE)) and \
                        not _mirrors(lab, mid, email):
                    damage.append(f"{label}: {email}'s phonebook is half-written")
        lab.fx.faults.slow(0)
    if not collided:
        problems.append("the two runs never met at the lock")
    happened = (f"{pairs} pairs: {collided} met at the lock (the later one exit 75, "
                f"changed nothing), {serial} ran one after the other")
    return _verdict(happened, problems, damage)


def killed_lock_holder(db_url: str, workdir: Path, full: bool) -> Outcome:
    """SIGKILL a sync while it holds the run lock; the next run (sync, import-csv) must not
    be locked out by what the dead one left behind."""
    rng = random.Random(75)
    rounds = 10 if full else 1
    tenant = generate_tenant(seed=33, mailboxes=3, contacts_per_mailbox=100, roles=GRAPH)
    problems: list[str] = []
    damage: list[str] = []
    with Lab(db_url, workdir, tenant) as lab:
        if lab.sync().code != 0:
            return Outcome("the healthy first run failed", "not tested", ok=False)
        lab.add_other_origins()
        lock = lock_path(db_url)
        for n in range(rounds):
            label = f"round {n + 1}"
            mutate(tenant, seed=700 + n, adds=10, updates=10, deletes=5)
            old = lab.snap()
            lab.fx.faults.slow(0.2)
            holder = child.start(db_url, "-v", "sync")
            if holder.wait_line(child.is_using_line) is None:
                problems.append(f"{label}: the run ended before it took the lock: "
                                f"{short(holder.finish().err)}")
                continue
            time.sleep(rng.uniform(0, 0.5))
            held = lock.read_text() if lock.exists() else "(no lock file)"
            holder.kill()
            killed = holder.finish()
            lab.fx.faults.slow(0)
            if killed.code != -9:
                problems.append(f"{label}: the holder was not killed (exit {killed.code})")
            left = lock.read_text() if lock.exists() else "(no lock file)"
            if not held == left == str(holder.pid):
                problems.append(f"{label}: the lock file named {held!r} while the run held it "
                                f"and {left!r} after the kill, not its pid {holder.pid}")
            mid = lab.snap()
            # The next runs, in this process: any process but the dead one.
            csv, csv_names = _csv_version(lab, n)
            for what, res in (("import-csv", lab.cli("import-csv", str(csv))),
                              ("sync", lab.sync())):
                if res.code != 0:
                    problems.append(f"{label}: {what} after the kill: exit {res.code}: "
                                    f"{short(res.headline)}")
            new = lab.snap()
            if _csv_names(new, sorted(tenant.mailboxes)[0]) != csv_names:
                damage.append(f"{label}: the CSV import after the kill did not land")
            half = lost(mid, old, new)
            if half != "nothing":
                damage.append(f"{label}: half-written: {half}")
            if by_origin(new, ("manual",)) != by_origin(old, ("manual",)):
                damage.append(f"{label}: hand-typed entries changed")
            if lab.mismatch(new):
                damage.append(f"{label}: {lab.mismatch(new)}")
    happened = (f"{rounds} lock holder(s) killed with SIGKILL (lock file left naming the dead "
                "pid); the next import-csv and sync exit 0")
    return _verdict(happened, problems, damage)


# -- 2. the database server killed mid-run ------------------------------------------------------

def _db_error_problems(label: str, res: child.Result, *words: str) -> list[str]:
    """A run that failed on its database: exit 1, one error line saying what happened and
    what to do, no traceback."""
    bad = [f"{label}: {p}" for p in child.clarity_problems(res)]
    if res.code != 1:
        bad.append(f"{label}: exit {res.code}, expected 1: {short(res.headline)}")
    errors = [ln for ln in res.lines if ln.startswith("error:")]
    if not errors:
        bad.append(f"{label}: no error line: {short(res.err)}")
    elif not all(w.lower() in errors[0].lower() for w in words):
        bad.append(f"{label}: the error line does not say {' / '.join(words)}: "
                   f"{short(errors[0], 200)}")
    return bad


def mariadb_restart(db_url: str, workdir: Path, full: bool) -> Outcome:
    """A private MariaDB server killed with SIGKILL while ``sync`` writes: once kept down
    until the run has ended, once started again at once (the run may go on). ``db_url`` (the
    shared server) is not used: that server must not be killed under other tests."""
    from ucware_contactsync import db as dbmod

    from .mariadb import PrivateMariaDB, ServerUnavailable

    rng = random.Random(3306)
    rounds = 10 if full else 2
    try:
        server = PrivateMariaDB().__enter__()
    except ServerUnavailable as exc:
        raise Unavailable(f"private MariaDB server: {exc}") from None
    problems: list[str] = []
    damage: list[str] = []
    codes: list[int] = []
    example = ""
    try:
        url = server.create_database("contactsync")
        engine = dbmod.make_engine(url)
        dbmod.upgrade(engine)
        engine.dispose()
        tenant = generate_tenant(seed=34, mailboxes=4, contacts_per_mailbox=200, roles=GRAPH)
        with Lab(url, workdir, tenant) as lab:
            if lab.sync().code != 0:
                return Outcome("the healthy first run failed", "not tested", ok=False)
            lab.add_other_origins()
            # One reader: the engine reads the next users' sync states between two writes,
            # so a kill also lands outside any phonebook's transaction.
            lab.must("config", "set", "max_workers", "1")
            for n in range(rounds):
                stay_down = n % 2 == 0
                label = f"{'kept down' if stay_down else 'restarted at once'} ({n + 1})"
                mutate(tenant, seed=900 + n, adds=40, updates=60, deletes=40)
                old = lab.snap()
                proc = child.start(url, "-v", "sync")
                proc.wait_line(child.is_user_line, count=1 + n % 3)
                time.sleep(rng.uniform(0, 0.03))
                server.kill()
                if not stay_down:
                    server.start()
                res = proc.finish()
                if stay_down:
                    server.start()
                codes.append(res.code)
                if stay_down or res.code != 0:
                    problems += _db_error_problems(label, res, "database")
                mid = lab.snap()
                _, more, worse = _aftermath(lab, old, mid, label)
                problems += more
                damage += worse
                if res.code == 1 and not example:
                    example = res.headline
    finally:
        server.close()
    happened = (f"server killed {rounds}x in the write phase (kept down until the run ended, "
                f"or started again at once): {_codes(codes)}; each next run exit 0"
                + (f"; e.g. {short(example, 260)!r}" if example else ""))
    return _verdict(happened, problems, damage)


def postgresql_terminated(db_url: str, workdir: Path, full: bool) -> Outcome:
    """PostgreSQL ends the connection of ``sync`` while it writes (pg_terminate_backend, as a
    server restart or an admin would): the shared server keeps running for the other tests."""
    from sqlalchemy import text

    from ucware_contactsync import db as dbmod

    rounds = 6 if full else 1
    tenant = generate_tenant(seed=36, mailboxes=4, contacts_per_mailbox=200, roles=GRAPH)
    problems: list[str] = []
    damage: list[str] = []
    codes: list[int] = []
    example = ""
    admin = dbmod.make_engine(db_url)
    try:
        with Lab(db_url, workdir, tenant) as lab, \
                admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if lab.sync().code != 0:
                return Outcome("the healthy first run failed", "not tested", ok=False)
            lab.add_other_origins()
            new = lab.snap()
            for n in range(rounds):
                label = f"round {n + 1}"
                mutate(tenant, seed=1300 + n, adds=40, updates=60, deletes=40)
                old = new
                proc = child.start(db_url, "-v", "sync")
                proc.wait_line(child.is_user_line, count=1 + n % 3)
                # Every other connection to this database: the run's, and idle ones left
                # in this process's pools by earlier in-process runs.
                ended = conn.execute(text(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
                res = proc.finish()
                codes.append(res.code)
                if res.code != 0:
                    problems += _db_error_problems(label, res, "database", "server runs")
                    example = example or res.headline
                if not ended:
                    problems.append(f"{label}: no connection to terminate")
                mid = lab.snap()
                new, more, worse = _aftermath(lab, old, mid, label)
                problems += more
                damage += worse
    finally:
        admin.dispose()
    happened = (f"connection ended {rounds}x in the write phase: {_codes(codes)} (exit 0: "
                "ended between two users, the next user reconnected); each next run exit 0"
                + (f"; e.g. {short(example, 260)!r}" if example else ""))
    return _verdict(happened, problems, damage)


# -- 3. SQLite on a full disk -------------------------------------------------------------------

# The fallback when no filesystem can be mounted: SQLite's own size limit, which fails a
# write with the same SQLITE_FULL ("database or disk is full") as a full disk does.
PAGE_LIMIT_ENTRY = (
    "-c",
    "import os, runpy, sqlite3\n"
    "from sqlalchemy import event\n"
    "from sqlalchemy.pool import Pool\n"
    "@event.listens_for(Pool, 'connect')\n"
    "def _limit(conn, _record):\n"
    "    if isinstance(conn, sqlite3.Connection):\n"
    "        conn.execute('PRAGMA max_page_count=' + os.environ['CS_MAX_PAGES'])\n"
    "runpy.run_module('ucware_contactsync', run_name='__main__', alter_sys=True)\n",
)


class SmallDisk:
    """A tmpfs of ``size`` mounted at ``path`` (needs root), filled up on request."""

    def __init__(self, path: Path, size: str = "16m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                            str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable(f"cannot mount a tmpfs: {r.stderr.strip() or r.returncode}")
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Fill the filesystem, then give ``leave`` bytes back."""
        chunk = b"\0" * 65536
        try:
            # Unbuffered: a buffered file keeps the chunk that did not fit and fails again,
            # with ENOSPC, when it is closed.
            f = open(self.filler, "ab", buffering=0)  # noqa: SIM115 - closed by the with below
        except OSError as exc:  # the database already took the last block: full enough
            if exc.errno != errno.ENOSPC:
                raise
            return
        with f:
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
            size = f.tell()
        with open(self.filler, "r+b") as f:
            f.truncate(max(0, size - leave))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        # Lazy: connections of this process may still hold the database file open.
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def _big_csv(lab: Lab, rows: int) -> Path:
    owner = sorted(lab.tenant.mailboxes)[0]
    path = lab.workdir / "gross.csv"
    lines = [f"{owner},{CSV_BOOK},g{j},Großkunde {j:05d} {'x' * 60},089 {j:07d},0171 {j:07d}"
             for j in range(rows)]
    path.write_text("owner,phonebook,id,display_name,business,mobile\n" + "\n".join(lines)
                    + "\n", encoding="utf-8")
    return path


def sqlite_disk_full(db_url: str, workdir: Path, full: bool) -> Outcome:
    """The SQLite file on a small tmpfs that is filled up (all but a few KB, different amounts
    per round) before ``sync`` and ``import-csv`` write; then space is freed and the next
    runs must complete. Without a mountable filesystem: SQLite's max_page_count."""
    from ucware_contactsync import db as dbmod

    margins = ([0, 24_000, 500_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000] if full
               else [24_000, 1_500_000])
    disk: SmallDisk | None = None
    try:
        disk = SmallDisk(workdir / "disk")
        how = "a full 16 MB tmpfs"
    except Unavailable as exc:
        how = f"SQLite max_page_count (no tmpfs: {exc})"
    url = f"sqlite:///{(disk.path if disk else workdir) / 'contactsync.db'}"
    problems: list[str] = []
    damage: list[str] = []
    said: list[str] = []
    try:
        engine = dbmod.make_engine(url)
        dbmod.upgrade(engine)
        engine.dispose()
        tenant = generate_tenant(seed=35, mailboxes=4, contacts_per_mailbox=150, roles=GRAPH)
        with Lab(url, workdir, tenant) as lab:
            if lab.sync().code != 0:
                return Outcome("the healthy first run failed", "not tested", ok=False)
            lab.add_other_origins()
            big = _big_csv(lab, 3000)
            for n, margin in enumerate(margins):
                label = f"{margin // 1000} KB left"
                mutate(tenant, seed=1100 + n, adds=150, updates=60, deletes=20)
                old = lab.snap()
                entry = ("-m", "ucware_contactsync")
                if disk:
                    disk.fill(margin)
                else:
                    os.environ["CS_MAX_PAGES"] = str(_page_count(url) + margin // 4096)
                    entry = PAGE_LIMIT_ENTRY
                res = child.run(url, "-v", "sync", entry=entry)
                csv = child.run(url, "import-csv", str(big), entry=entry)
                if disk:
                    disk.free()  # first: in WAL mode SQLite cannot even open a full disk
                mid = lab.snap()
                written = sum(1 for ln in res.lines if child.is_user_line(ln))
                if res.code == 0:
                    said.append(f"{label}: sync fit")
                else:
                    problems += _db_error_problems(f"sync, {label}", res, "full",
                                                   "free disk space")
                    said.append(f"{label}: sync exit {res.code} after {written} of "
                                f"{len(tenant.mailboxes)} users")
                problems += _db_error_problems(f"import-csv, {label}", csv, "full",
                                               "free disk space")
                owner = sorted(tenant.mailboxes)[0]
                if mid.get((owner, CSV_BOOK)) != old.get((owner, CSV_BOOK)):
                    damage.append(f"{label}: import-csv failed but {CSV_BOOK} changed")
                _, more, worse = _aftermath(lab, old, mid, label)
                problems += more
                damage += worse
            first_error = next((ln for ln in res.lines if ln.startswith("error:")), "")
    finally:
        os.environ.pop("CS_MAX_PAGES", None)
        if disk:
            disk.close()
    happened = f"{how}: {'; '.join(said)}; import-csv exit 1 each time"
    if first_error:
        happened += f" ({short(first_error, 160)})"
    return _verdict(happened, problems, damage)


def _codes(codes: list[int]) -> str:
    """[1, 1, 0] -> 'exit 1 x2, exit 0 x1'"""
    return ", ".join(f"exit {c} x{codes.count(c)}" for c in sorted(set(codes), reverse=True))


def _page_count(url: str) -> int:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])


CASES: list[Case] = [
    Case("sigkill-write", "SIGKILL at random points of the write phase", kill_mid_write),
    Case("mariadb-restart", "MariaDB server killed (and restarted) mid-write", mariadb_restart,
         backends=("mariadb",)),
    Case("postgresql-terminated", "PostgreSQL ends the run's connection mid-write",
         postgresql_terminated, backends=("postgresql",)),
    Case("sqlite-disk-full", "SQLite on a full disk", sqlite_disk_full, backends=("sqlite",)),
    Case("concurrent-runs", "nightly sync and manual sync / import-csv started together",
         concurrent_runs),
    Case("killed-lock-holder", "run lock held by a run killed with SIGKILL", killed_lock_holder),
]
