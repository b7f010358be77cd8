"""A fake Exchange Online wired into one database, the real CLI run in-process against it,
and the checks every fault case makes afterwards.

``scenario()`` is the common shape of a network fault case: a healthy first run, hand-typed
and CSV entries next to the synced ones, the user edits Outlook, then the run under the
fault, then a healthy run. It returns the ``Outcome`` row: what the admin saw, what was lost.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import (
    AbstractContextManager,
    contextmanager,
    nullcontext,
    redirect_stderr,
    redirect_stdout,
)
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ucware_contactsync.cli import main
from ucware_contactsync.contact import NUMBER_TYPES
from ucware_contactsync.model import NAME_LEN, NUMBER_LEN
from ucware_contactsync.testing import FakeExchange, Tenant, generate_tenant, mutate
from ucware_contactsync.testing.server import RequestRecord

from .common import Outcome, Snapshot, by_origin, lost, snapshot

ROLES = {"ews": ("full_access_as_app",), "graph": ("Contacts.Read",)}
HANG_S = 300.0  # a run still going after this long is reported as hung (cases take seconds)
EWS_SUNSET = "warning: EWS in Exchange Online is blocked"
CSV_BOOK = "Kunden"
# What the module stores for text (docs/reliability.md): control characters other than tab
# and newline are dropped, surrogates too; an independent spelling of the rule, so that the
# expectation does not just repeat the production code.
_DROPPED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass
class Run:
    """One CLI invocation."""

    code: int
    out: str
    err: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        """stderr lines, without the EWS sunset warning every EWS run prints."""
        return [ln for ln in self.err.splitlines() if ln.strip()
                and not ln.startswith(EWS_SUNSET)]

    @property
    def failed(self) -> dict[str, str]:
        """mailbox -> its FAILED line."""
        out = {}
        for ln in self.lines:
            m = re.match(r"^(\S+@\S+): FAILED: ", ln)
            if m:
                out[m.group(1).lower()] = ln
        return out

    @property
    def headline(self) -> str:
        """The line an admin reads first: the first failure or error, else the summary."""
        for ln in self.lines:
            if ": FAILED: " in ln or ln.startswith(("error:", "unexpected error:", "HUNG:")):
                return ln
        return self.lines[-1] if self.lines else "(no output)"

    def problems(self) -> list[str]:
        """What makes the output unclear: tracebacks, lines that are neither a failure, an
        error nor the summary, over-long lines, raw server answers (headers, HTML) in them."""
        bad: list[str] = []
        if "Traceback" in self.err or '  File "' in self.err:
            bad.append("a traceback without -vv")
        for ln in self.lines:
            known = (": FAILED: " in ln or ln.startswith(("sync via ", "error:"))
                     or re.match(r"^\S+@\S+: (skipped|no longer in a group)", ln))
            if not known:
                bad.append(f"unexpected output line {ln[:120]!r}")
            elif len(ln) > 600:
                bad.append(f"a {len(ln)}-character line")
            elif "{'" in ln or "<html" in ln.lower() or "<?xml" in ln:
                bad.append(f"a raw server answer in the line: {short(ln, 120)!r}")
        if self.code in (0, 1) and not any(ln.startswith(("sync via ", "error:"))
                                           for ln in self.lines):
            bad.append("neither a summary nor an error line")
        return bad


def short(text: str, limit: int = 150) -> str:
    """One line of at most ``limit`` characters; URLs of the fake shortened to their host."""
    text = re.sub(r"(https://[^/\s]+)/\S+", r"\1/…", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Lab:
    """A running fake for ``tenant`` and a database configured to sync from it."""

    def __init__(self, db_url: str, workdir: Path, tenant: Tenant, api: str = "auto",
                 on_premises: bool = False) -> None:
        self.db_url = db_url
        self.workdir = Path(workdir)
        self.tenant = tenant
        # on_premises: an Exchange Server (office365=false) with NTLM and a service account
        self.fx = FakeExchange(tenant, cert_dir=self.workdir / "certs", on_premises=on_premises)
        self._env: dict[str, str | None] = {}
        self.api = api
        self.extra: dict[str, object] = {}  # what a case wants to keep between its steps
        self.fault_requests: list[RequestRecord] = []  # the requests of the run under fault

    def __enter__(self) -> Lab:
        lock = self.workdir / "lock"
        lock.mkdir(parents=True, exist_ok=True)
        for key, value in {"CONTACTSYNC_SYSLOG": "0", "CONTACTSYNC_LOCK_DIR": str(lock)}.items():
            self._env[key] = os.environ.get(key)
            os.environ[key] = value
        self.fx.start()
        try:
            self._configure()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.fx.stop()
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _configure(self) -> None:
        """The admin steps of the seed (config keys, a group with ews_synccontacts=true, a
        user per mailbox), through the library in one transaction: what the CLI commands do,
        without a process start and a commit per step."""
        from ucware_contactsync import directory, settings_store
        from ucware_contactsync.db import Database

        database = Database(self.db_url)
        try:
            with database.session() as s:
                for key, value in {**self.fx.settings(), "api": self.api}.items():
                    settings_store.set_value(s, key, value)
                directory.add_group(s, "Kontakte")
                directory.set_param(s, "Kontakte", "ews_synccontacts", "true")
                for email in sorted(self.tenant.mailboxes):
                    directory.add_user(s, email)
                    directory.add_member(s, "Kontakte", email)
        finally:
            database.dispose()

    # -- running the CLI ------------------------------------------------------------------------
    def cli(self, *argv: str, timeout: float = HANG_S) -> Run:
        """The CLI in-process. A run still going after ``timeout`` seconds is reported as
        hung (exit code -1) instead of hanging the matrix; its thread is left behind."""
        out, err = io.StringIO(), io.StringIO()
        result: dict[str, int] = {}
        saved = sys.stdout, sys.stderr

        def run() -> None:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    result["code"] = main(["--db", self.db_url, *argv])
                except SystemExit as exc:
                    result["code"] = int(exc.code or 0)

        started = time.monotonic()
        worker = threading.Thread(target=run, name="cli", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            sys.stdout, sys.stderr = saved  # the hung thread still holds the redirection
            # Said at once: the run's threads stay stuck, and the interpreter waits for
            # them at exit, so a summary at the end may never come.
            print(f"reliability: '{' '.join(argv)}' hung for {timeout:.0f} s against "
                  f"{self.db_url.split(':')[0]}; this process may not exit by itself",
                  file=sys.__stderr__, flush=True)
            return Run(-1, out.getvalue(), err.getvalue() + f"HUNG: still running after "
                       f"{timeout:.0f} s\n", time.monotonic() - started)
        return Run(result.get("code", -2), out.getvalue(), err.getvalue(),
                   time.monotonic() - started)

    def must(self, *argv: str) -> Run:
        r = self.cli(*argv)
        if r.code != 0:
            raise RuntimeError(f"setup step {' '.join(argv[:3])} failed: {short(r.err)}")
        return r

    def sync(self, *argv: str) -> Run:
        return self.cli("sync", *argv)

    def snap(self) -> Snapshot:
        return snapshot(self.db_url)

    # -- data next to the synced entries --------------------------------------------------------
    def add_other_origins(self) -> None:
        """A hand-typed entry in every synced phonebook (what ``phonebook add`` and the UCC
        client write), a CSV phonebook for the first user (``import-csv``); through the
        library, one transaction each, to keep the cases quick."""
        from ucware_contactsync import directory, phonebook
        from ucware_contactsync.contact import Contact, PhoneNumber
        from ucware_contactsync.csvimport import import_csv
        from ucware_contactsync.db import Database
        from ucware_contactsync.ownership import Origin

        users = sorted(self.tenant.mailboxes)
        database = Database(self.db_url)
        try:
            with database.session() as s:
                for i, email in enumerate(users):
                    user = directory.require_user(s, email)
                    book = phonebook.writable_phonebook(
                        s, user, "Privat", Origin.HAND,
                        phonebook.reserved_for(s, user, "Privat", "Privat"))
                    assert book is not None
                    phonebook.add_manual_entry(s, book, Contact(
                        display_name=f"Hausmeister {i}",
                        numbers=(PhoneNumber("mobile", f"0170 99999{i:02d}"),)), "DE")
            csv = self.workdir / "kunden.csv"
            csv.write_text(
                "owner,phonebook,id,display_name,company,business,mobile\n"
                f"{users[0]},{CSV_BOOK},k1,Max Müller,ACME GmbH,089 123456-0,\n"
                f"{users[0]},{CSV_BOOK},k2,Bäckerei Süß 🥐,,0911 4444444,0171 1111111\n",
                encoding="utf-8")
            import_csv(database, csv)
        finally:
            database.dispose()

    # -- the mailbox as the phonebook should show it ----------------------------------------------
    def expected(self, email: str) -> dict[str, tuple]:
        """source_id -> the entry a complete sync of this mailbox must hold."""
        out: dict[str, tuple] = {}
        for item in self.tenant.mailbox(email).all_items():
            if item.kind != "contact":
                continue
            numbers: dict[str, str] = {}
            for kind, number in [*item.numbers.items(), *item.extra_numbers]:
                text = clean(number)[:NUMBER_LEN]
                if text and kind not in numbers:
                    numbers[kind] = text
            if not numbers:
                continue  # a phonebook is for calling
            name = item.display_name.strip() or " ".join(
                p for p in (item.given_name.strip(), item.surname.strip()) if p)
            out[item.graph_id] = (
                clean(name)[:NAME_LEN], clean(item.given_name)[:NAME_LEN],
                clean(item.surname)[:NAME_LEN], clean(item.company)[:NAME_LEN],
                clean(item.department)[:NAME_LEN], clean(item.job_title)[:NAME_LEN],
                tuple(clean(e) for e in item.emails if e.strip()),
                tuple(clean(c) for c in item.categories),
                tuple((t, numbers[t]) for t in NUMBER_TYPES if t in numbers))
        return out

    def mismatch(self, snap: Snapshot, title: str = "Privat") -> str:
        """'' if every user's synced phonebook equals the mailbox, else what differs."""
        problems = []
        for email in sorted(self.tenant.mailboxes):
            want = self.expected(email)
            entries = snap.get((email, title), ())
            have = {e[1]: (e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9],
                           tuple((n[0], n[1]) for n in e[10]))
                    for e in entries if e[0] == "office365"}
            if have == want:
                continue
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
            detail = ""
            if wrong:
                got, wanted = have[wrong[0]], want[wrong[0]]
                detail = f" (e.g. {short(repr(got), 90)} for {short(repr(wanted), 90)})"
            problems.append(f"{email}: {len(missing)} missing, {len(extra)} extra, "
                            f"{len(wrong)} different{detail}")
        return "; ".join(problems)


def clean(text: str) -> str:
    return _DROPPED.sub("", text).strip()


# -- knobs in code, for tests (no config keys) ---------------------------------------------------

@contextmanager
def fast_retries(step: float = 0.02) -> Iterator[None]:
    """Shrink the sources' back-off between transient retries (not the server's
    Retry-After / BackOffMilliseconds), so retried faults cost milliseconds in the suite."""
    from ucware_contactsync.sources import ews, graph

    old = graph.GraphSource.backoff, ews.BACKOFF
    graph.GraphSource.backoff, ews.BACKOFF = step, step
    try:
        yield
    finally:
        graph.GraphSource.backoff, ews.BACKOFF = old


@contextmanager
def short_timeouts(read: float) -> Iterator[None]:
    """Client timeouts of ``read`` seconds: Graph's (connect, read) and exchangelib's."""
    from exchangelib.protocol import BaseProtocol

    from ucware_contactsync.sources.graph import client as graph_client

    old = graph_client.TIMEOUT, BaseProtocol.TIMEOUT
    graph_client.TIMEOUT, BaseProtocol.TIMEOUT = (read, read), read
    try:
        yield
    finally:
        graph_client.TIMEOUT, BaseProtocol.TIMEOUT = old


# -- the common shape of a network fault case ----------------------------------------------------

@dataclass
class Fault:
    """How to provoke one fault and what the run under it must do."""

    arm: Callable[[Lab], None]  # set the fake's knobs (or tenant data)
    codes: tuple[int, ...] = (0,)  # documented exit codes this fault may give
    must_fail: tuple[str, ...] = ()  # mailboxes that must fail (FAILED line, old phonebook)
    may_fail: bool = False  # other mailboxes may fail too (e.g. a token outage)
    failure_text: str = ""  # every FAILED line must contain this (what the admin is told)
    during: Callable[[], AbstractContextManager[None]] = nullcontext  # code knobs for the run
    # further problems of the fault run (its requests: lab.fault_requests)
    check: Callable[[Lab, Run], list[str]] | None = None
    note: Callable[[Lab, Run], str] | None = None  # adds to "what happened"
    mutate: bool = True  # the user edits Outlook before the fault run
    argv: tuple[str, ...] = ()  # options of the run under fault (e.g. --full)
    tenant: Callable[[str, bool], Tenant] | None = None  # (api, full) -> tenant; small_tenant
    hang_s: float = HANG_S  # the run under fault counts as hung after this long


def small_tenant(api: str, full: bool, seed: int = 5) -> Tenant:
    """3 mailboxes of ~25 contacts (the suite) or 5 of 400 (``--full``)."""
    return generate_tenant(seed=seed, mailboxes=5 if full else 3,
                           contacts_per_mailbox=400 if full else 25, subfolders=2,
                           distribution_lists=1, roles=ROLES[api])


def scenario(db_url: str, workdir: Path, full: bool, api: str, fault: Fault,
             tenant: Tenant | None = None, on_premises: bool = False) -> Outcome:
    tenant = tenant or (fault.tenant or small_tenant)(api, full)
    retries = nullcontext() if full else fast_retries()
    with Lab(db_url, workdir, tenant, on_premises=on_premises) as lab, retries:
        first = lab.sync()
        if first.code != 0:
            return Outcome(f"healthy first run failed: exit {first.code}: "
                           f"{short(first.headline)}", "not tested", ok=False)
        lab.add_other_origins()
        if fault.mutate:
            mutate(tenant, seed=17, adds=3, updates=3, deletes=2)
        old = lab.snap()
        lab.fx.clear_requests()
        fault.arm(lab)
        with fault.during():
            run = lab.cli("sync", *fault.argv, timeout=fault.hang_s)
        lab.fx.faults.reset()
        requests = lab.fault_requests = list(lab.fx.requests)
        after = lab.snap()
        heal = lab.sync()
        new = lab.snap()

        problems = judge(lab, fault, run, old, after)
        if heal.code != 0:
            problems.append(f"the next healthy run gave exit {heal.code}: {short(heal.headline)}")
        if fault.check:
            problems += fault.check(lab, run)
        damage = [x for x in (lost(after, old, new),) if x != "nothing"]
        if by_origin(after, ("manual", "csv")) != by_origin(old, ("manual", "csv")):
            damage.append("hand-typed or CSV entries changed")
        differs = lab.mismatch(new)
        if differs:
            damage.append(f"after the next healthy run: {differs}")
        hit = sum(1 for r in requests if r.fault)
        happened = f"exit {run.code}: {short(run.headline, 160)}"
        if hit:
            happened += f" [{hit} of {len(requests)} requests faulty]"
        if fault.note:
            happened += f" [{fault.note(lab, run)}]"
        if problems:
            happened += " — NOT OK: " + "; ".join(problems)
        return Outcome(happened, "; ".join(damage) or "nothing", ok=not problems)


def judge(lab: Lab, fault: Fault, run: Run, old: Snapshot, after: Snapshot) -> list[str]:
    """Exit code, one clear line per failure, failed users' phonebooks as before."""
    problems = [f"exit {run.code}, expected {' or '.join(map(str, fault.codes))}"
                for _ in [0] if run.code not in fault.codes]
    problems += run.problems()
    failed = run.failed
    for email in fault.must_fail:
        if email.lower() not in failed:
            problems.append(f"{email} did not fail")
    unexpected = set(failed) - {e.lower() for e in fault.must_fail}
    if unexpected and not fault.may_fail:
        problems.append(f"{', '.join(sorted(unexpected))} failed: "
                        f"{short(failed[sorted(unexpected)[0]])}")
    if fault.failure_text:
        for ln in failed.values():
            if fault.failure_text.lower() not in ln.lower():
                problems.append(f"failure line does not say {fault.failure_text!r}: "
                                f"{short(ln, 120)}")
    for email in failed:
        key = (email, "Privat")
        if after.get(key) != old.get(key):
            problems.append(f"{email} failed but its phonebook changed")
    return problems
