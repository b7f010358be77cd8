"""Signals and memory: a throttled sync stopped with Ctrl-C (once or three times) or SIGTERM,
and the peak memory of ``import-csv`` for a big file and for one over the size limit.

A stopped run must end within a few seconds with one line and exit 130 (SIGINT) or 143
(SIGTERM), leave every phonebook old or new, and release the lock (the next run exits 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ucware_contactsync.csvimport.reader import MAX_FILE_BYTES
from ucware_contactsync.testing import generate_tenant, mutate

from . import child
from .common import Case, Outcome
from .lab import Lab, short

GRAPH = ("Contacts.Read",)
STOP_WITHIN_S = 5.0
RSS_LIMIT_MB = 150


def _stop(db_url: str, workdir: Path, signum: int, times: int) -> Outcome:
    tenant = generate_tenant(seed=41, mailboxes=4, contacts_per_mailbox=30, roles=GRAPH)
    want = 128 + signum
    with Lab(db_url, workdir, tenant, api="graph") as lab:
        if lab.sync().code != 0:
            return Outcome("the healthy first run failed", "not tested", ok=False)
        old = lab.snap()
        mutate(tenant, seed=7, adds=5, updates=5, deletes=5)
        # Every Graph request answered 429 with Retry-After 30 s: the run sits in its pauses.
        lab.fx.faults.throttle_graph(count=100_000, retry_after_s=30)
        proc = child.start(db_url, "-v", "sync")
        if proc.wait_line(child.is_using_line, timeout=60) is None:
            proc.kill()
            return Outcome(f"the run never started: {short(proc.finish().headline)}",
                           "not tested", ok=False)
        time.sleep(1.5)  # well inside the throttling pauses
        sent = time.monotonic()
        for _ in range(times):
            proc.popen.send_signal(signum)
            time.sleep(0.1)
        res = proc.finish(timeout=60)
        took = time.monotonic() - sent
        mid = lab.snap()
        lab.fx.faults.reset()
        again = lab.sync()
        new = lab.snap()
    # -v shows the throttling pauses ("graph anna@...: HTTP 429 ...; retrying in 30 s").
    problems = [p for p in child.clarity_problems(res) if "line 'graph " not in p]
    if res.code != want:
        problems.append(f"exit {res.code}, not {want}")
    if took > STOP_WITHIN_S:
        problems.append(f"took {took:.1f} s to stop")
    if "interrupted by" not in res.err:
        problems.append("no 'interrupted by' line")
    if again.code != 0:
        problems.append(f"the next run: exit {again.code} ({short(again.headline)})")
    mixed = [f"{o} / {t}" for (o, t), v in mid.items() if v not in (old.get((o, t)),
                                                                      new.get((o, t)))]
    happened = (f"exit {res.code} after {took:.1f} s: {short(res.headline)}; next run exit "
                f"{again.code}")
    if problems:
        happened += " — " + "; ".join(problems)
    return Outcome(happened, "; ".join(mixed) + " half-written" if mixed else "nothing",
                   ok=not problems)


def sigint_throttled(db_url: str, workdir: Path, full: bool) -> Outcome:
    return _stop(db_url, workdir, signal.SIGINT, 1)


def sigint_three_times(db_url: str, workdir: Path, full: bool) -> Outcome:
    return _stop(db_url, workdir, signal.SIGINT, 3)


def sigterm_throttled(db_url: str, workdir: Path, full: bool) -> Outcome:
    return _stop(db_url, workdir, signal.SIGTERM, 1)


# -- memory ---------------------------------------------------------------------------------------

def peak_rss_mb(argv: list[str]) -> tuple[int, float, str]:
    """(exit code, peak RSS in MB, stderr) of one child process (wait4: its own rusage)."""
    proc = subprocess.Popen([sys.executable, "-m", "ucware_contactsync", *argv],
                            env=child.child_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode("utf-8", "replace")
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, err


def write_csv(path: Path, megabytes: float) -> int:
    """An own-layout file of about ``megabytes`` MB for the owners user0..9@bench.example."""
    header = "owner,phonebook,display_name,company,mobile,business\n"
    rows = 0
    with path.open("w", encoding="utf-8") as f:
        f.write(header)
        while f.tell() < megabytes * 2**20:
            f.write(f"user{rows % 10}@bench.example,Kunden,Jürgen Müller {rows},Müller Bau "
                    f"GmbH,0171 {1000000 + rows},+49 30 {2000000 + rows}\n")
            rows += 1
    return rows


def csv_memory(db_url: str, workdir: Path, full: bool) -> Outcome:
    small = workdir / "import.csv"
    rows = write_csv(small, 20 if full else 3)
    big = workdir / "too-big.csv"
    with big.open("wb") as f:  # sparse: over the limit without using the disk
        f.write(b"owner,phonebook,display_name,mobile\n")
        f.truncate(MAX_FILE_BYTES * 6)
    base = ["--db", db_url]
    for i in range(10):
        subprocess.run([sys.executable, "-m", "ucware_contactsync", *base, "users", "add",
                        f"user{i}@bench.example"], env=child.child_env(), check=True,
                       capture_output=True)
    code, rss, err = peak_rss_mb([*base, "import-csv", str(small)])
    code2, rss2, err2 = peak_rss_mb([*base, "import-csv", str(big)])
    size = small.stat().st_size / 2**20
    happened = (f"{size:.0f} MB ({rows} rows): exit {code}, peak {rss:.0f} MB; "
                f"{big.stat().st_size / 2**20:.0f} MB file: exit {code2}, peak {rss2:.0f} MB")
    problems = []
    if code != 0:
        problems.append(f"import failed: {short(err)}")
    if code2 != 2 or "split" not in err2:
        problems.append(f"the big file was not refused: {short(err2)}")
    if rss2 > RSS_LIMIT_MB or (not full and rss > RSS_LIMIT_MB):
        problems.append(f"peak over {RSS_LIMIT_MB} MB")
    return Outcome(f"{happened}{' — ' + '; '.join(problems) if problems else ''}",
                   ok=not problems)


CASES: list[Case] = [
    Case("sigint-throttled", "Ctrl-C (SIGINT) during a throttled sync", sigint_throttled,
         backends=("sqlite", "postgresql")),
    Case("sigint-three-times", "Ctrl-C pressed three times during a throttled sync",
         sigint_three_times, backends=("sqlite",)),
    Case("sigterm-throttled", "SIGTERM (systemctl stop) during a throttled sync",
         sigterm_throttled, backends=("sqlite", "mariadb")),
    Case("csv-memory", "import-csv of a big file, and of one over the size limit", csv_memory,
         backends=("sqlite",)),
]
