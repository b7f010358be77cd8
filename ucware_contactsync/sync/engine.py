"""The sync engine: read mailboxes in parallel, write each user's phonebook as one diff.

Reads run in a thread pool (``max_workers``); writes happen one user at a time in the calling
thread, each in its own transaction, so a failure rolls back that user's phonebook only and
never touches anyone else's.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from .. import directory, logs
from ..db import Database, database_failure
from ..errors import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, DatabaseError
from ..model import Entry, Phonebook, SyncState, User
from ..ownership import Origin
from ..phonebook import (
    DiffCounts,
    PhonebookClash,
    apply,
    diff_read,
    existing_entries,
    writable_phonebook,
    written_numbers,
)
from ..settings import Settings
from ..sources import ContactSource, Kind, MailboxRead, SourceError
from . import guard
from .numbers import E164, NumberWorker
from .states import store

log = logs.get("sync")

ORIGIN = Origin.MAILBOX
# Reads queued or done but not yet written, per worker (bounds memory).
AHEAD = 2


# The states of a user's synced phonebook under a title, read from one mailbox through one
# API. Built once: building it cost more than running it, once per mailbox and run.
_STATES = (select(SyncState.folder_id, SyncState.state)
           .join(Phonebook, Phonebook.id == SyncState.phonebook_id)
           .where(Phonebook.owner_id == bindparam("owner"), Phonebook.title == bindparam("title"),
                  Phonebook.source == ORIGIN.value, SyncState.api == bindparam("api"),
                  SyncState.mailbox == bindparam("mailbox")))


@dataclass
class UserResult:
    email: str
    status: str  # ok | failed | skipped
    diff: DiffCounts | None = None  # counts only: a run never keeps every user's contacts
    message: str = ""
    full: bool = False
    fatal: DatabaseError | None = None  # the database itself failed: the run stops


@dataclass
class RunResult:
    api: str
    users: list[UserResult] = field(default_factory=list)
    aborted: str = ""
    abort_code: int = EXIT_CONFIG
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def failed(self) -> list[UserResult]:
        return [u for u in self.users if u.status == "failed"]

    @property
    def exit_code(self) -> int:
        if self.aborted:
            return self.abort_code
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def summary(self) -> str:
        ok = [u for u in self.users if u.status == "ok"]
        skipped = [u for u in self.users if u.status == "skipped"]
        t = DiffCounts.total(u.diff for u in ok)
        adds, upd, rem = t.added, t.updated, t.removed
        users = "user" if len(ok) == 1 else "users"
        if self.dry_run:
            return (f"dry run via {self.api}, nothing written: {len(ok)} {users} read, "
                    f"{len(self.failed)} failed, {len(skipped)} skipped; would be {adds} added, "
                    f"{upd} updated, {rem} removed in {self.seconds:.1f} s")
        return (f"sync via {self.api}: {len(ok)} {users} synced, {len(self.failed)} failed, "
                f"{len(skipped)} skipped; {adds} added, {upd} updated, {rem} removed "
                f"in {self.seconds:.1f} s")


_gc_lock = threading.Lock()
_gc_runs = 0  # runs in this process now (tests run several at once)
_gc_before: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A run allocates millions of short-lived objects (JSON, contacts, rows): at CPython's
    default thresholds the cyclic collector ran 5,211 times in a first sync of 1,000 × 200,
    3.6 s holding the interpreter lock the writer waits for. During runs the youngest
    generation is collected every 10,000 net allocations instead of 700
    (docs/performance.md); the last run to end puts the thresholds back."""
    global _gc_runs, _gc_before
    with _gc_lock:
        if _gc_runs == 0:
            _gc_before = gc.get_threshold()
            gc.set_threshold(max(10_000, _gc_before[0]), *_gc_before[1:])
        _gc_runs += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_runs -= 1
            if _gc_runs == 0:
                gc.set_threshold(*_gc_before)


class _Pool(ThreadPoolExecutor):
    """Leaving the block by an exception (Ctrl-C, SIGTERM) drops the queued reads and does
    not wait for running ones: they only read, and may sleep out a throttling pause."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        return False


class SyncEngine:
    def __init__(self, database: Database, settings: Settings, source: ContactSource, *,
                 only_users: Sequence[str] = (), dry_run: bool = False, full: bool = False,
                 force: bool = False) -> None:
        self.db = database
        self.settings = settings
        self.source = source
        self.only = {u.strip().lower() for u in only_users}
        self.dry_run = dry_run
        self.full = full
        self.force = force

    # -- selection and state ----------------------------------------------------------------

    def _select(self, result: RunResult) -> list[tuple[int, str]]:
        with self.db.session() as s:
            users = directory.selected_users(s)
            chosen: list[tuple[int, str]] = []
            for u in users:
                if self.only and (u.email_key or "") not in self.only:
                    continue
                if not u.email:
                    name = u.name or f"user #{u.id}"
                    result.users.append(UserResult(name, "skipped", message="has no e-mail "
                                                   "address on the UC server"))
                    continue
                chosen.append((u.id, u.email))
            selected = {u.email_key for u in users}
            for email in sorted(self.only - selected):
                known = directory.find_user(s, email) is not None
                result.users.append(self._fail(email, (
                    "is not in a group with ews_synccontacts=true" if known
                    else "is not a user of the UC server")))
        return chosen

    def _states(self, user_id: int, email: str) -> dict[str, str]:
        """The states stored for exactly this phonebook, mailbox and API. None (a full read)
        on --full, or when there is no synced phonebook under the current title yet (first
        run, phonebookname changed, phonebook deleted by hand), or its states were read from
        another mailbox (the user's e-mail changed) or through the other API."""
        if self.full:
            return {}
        with self.db.session() as s:
            rows = s.execute(_STATES, {"owner": user_id, "title": self.settings.phonebookname,
                                       "api": self.source.api, "mailbox": email.lower()})
            return {folder: state for folder, state in rows}

    def _release_left(self) -> None:
        """Users who left the sync group (or whose group no longer syncs): their phonebook
        stays exactly as it is, nothing is removed, and it is no longer synced; their stored
        states are stale and go, with one line per user. Back in the group, the phonebook is
        read in full and matched entry by entry (no duplicates)."""
        with self.db.session() as s:
            selected = {u.id for u in directory.selected_users(s)}
            rows = s.execute(
                select(User.id, User.email, Phonebook.id, Phonebook.title, User.email_key)
                .join(Phonebook, Phonebook.owner_id == User.id)
                .join(SyncState, SyncState.phonebook_id == Phonebook.id)
                .where(User.id.not_in(selected))
                .distinct().order_by(User.email_key, Phonebook.title)).all()
            for uid, email, book_id, title, _key in rows:
                if self.only and (email or "").lower() not in self.only:
                    continue
                kept = s.scalar(select(func.count(Entry.id)).where(
                    Entry.phonebook_id == book_id, Entry.origin == ORIGIN.value)) or 0
                verb = "would be dropped (dry run)" if self.dry_run else "were dropped"
                log.log(logs.NOTICE, "%s: no longer in a group with ews_synccontacts=true: "
                        "phonebook %r keeps its %d synced entries and is no longer synced; its "
                        "sync states %s", email or f"user #{uid}", title, kept, verb)
                if not self.dry_run:
                    s.execute(delete(SyncState).where(SyncState.phonebook_id == book_id))

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> RunResult:
        with fewer_collections():
            return self._run()

    def _run(self) -> RunResult:
        started = time.monotonic()
        result = RunResult(api=self.source.api, dry_run=self.dry_run)
        users = self._select(result)
        self._release_left()
        workers = max(1, min(self.settings.max_workers, len(users) or 1))
        # Reads run at most AHEAD mailboxes ahead of the writes, so memory holds a few
        # mailboxes whatever the tenant's size.
        ahead = workers * AHEAD
        waiting = deque(users)
        # Mailboxes whose states are loaded and announced to the source (source.prefetch),
        # up to its prefetch_window ahead of the reads: a source may batch their requests.
        announced: deque[tuple[int, str, dict[str, str]]] = deque()
        window = self.source.prefetch_window
        numbers = NumberWorker(self.settings.default_region, self.settings.area_code)
        # A read's numbers go to the number worker as soon as the read is complete (in its
        # reader thread), while the writer is still busy with earlier mailboxes.
        e164: dict[int, Future[E164] | None] = {}  # id(read) ->

        def read_mailbox(email: str, states: dict[str, str] | None) -> MailboxRead:
            got = self.source.read(email, states)
            if not self.dry_run:
                e164[id(got)] = numbers.submit(written_numbers(got.contacts))
            return got

        with _Pool(max_workers=workers, thread_name_prefix="mailbox") as pool, numbers:
            futures: dict[Future[MailboxRead], tuple[int, str, bool]] = {}
            pending: deque[Future[MailboxRead]] = deque()

            def submit(uid: int, email: str, states: dict[str, str] | None) -> None:
                fut = pool.submit(read_mailbox, email, states)
                futures[fut] = (uid, email, not states)
                pending.append(fut)

            # Writes follow the order of selection; reads run ahead in the pool.
            while pending or waiting or announced:
                while (waiting or announced) and len(pending) < ahead and not result.aborted:
                    if waiting and (not announced or len(announced) < window // 2):
                        group = [(uid, email, self._states(uid, email)) for uid, email in (
                            waiting.popleft() for _ in range(min(len(waiting), max(
                                1, window - len(announced)))))]
                        self.source.prefetch([(e, st) for _, e, st in group if st])
                        announced.extend(group)
                    submit(*announced.popleft())
                if not pending:
                    break
                fut = pending.popleft()
                uid, email, was_full = futures.pop(fut)
                if result.aborted:
                    fut.cancel()
                    continue
                try:
                    read = fut.result()
                except SourceError as exc:
                    if exc.kind is Kind.STATE_INVALID and not was_full:
                        log.info("%s: %s; reading everything again", email, exc.message)
                        submit(uid, email, None)
                        continue
                    if exc.kind is Kind.AUTH:
                        result.aborted = str(exc)
                        for other in pending:
                            other.cancel()
                        continue
                    result.users.append(self._fail(email, str(exc)))
                    continue
                except Exception as exc:  # noqa: BLE001 - one user's bug never stops the rest
                    log.debug("read of %s crashed", email, exc_info=True)
                    result.users.append(self._fail(email, f"reading the mailbox failed: "
                                                          f"{type(exc).__name__}: {exc}"))
                    continue
                done = self._write(uid, email, read, numbers.take(e164.pop(id(read), None)))
                result.users.append(done)
                if done.fatal is not None:  # full disk, server gone: the next would fail too
                    left = len(pending) + len(waiting)
                    more = f", as are those of {left} more user{'s' if left > 1 else ''}"
                    result.aborted = (f"{done.fatal.message} while writing the phonebook of "
                                      f"{email}, which is unchanged{more if left else ''} — "
                                      f"{done.fatal.hint}")
                    result.abort_code = done.fatal.exit_code
                del read  # the next mailbox's contacts replace these, not join them
        result.seconds = time.monotonic() - started
        return result

    def _fail(self, email: str, message: str) -> UserResult:
        log.error("%s: FAILED: %s", email, message)
        return UserResult(email, "failed", message=message)

    def _write(self, user_id: int, email: str, read: MailboxRead, known: E164) -> UserResult:
        title = self.settings.phonebookname
        try:
            with self.db.session() as s:
                user = s.get(User, user_id)
                if user is None:
                    return self._fail(email, "was deleted from the UC server during the run")
                try:
                    book = writable_phonebook(s, user, title, ORIGIN)
                except PhonebookClash as clash:
                    return self._fail(email, (
                        f"{clash}; the sync never takes it over and changed nothing — rename "
                        f"that phonebook, or choose another title with 'ucware-contactsync "
                        f"config set phonebookname TITLE'"))
                assert book is not None
                existing = existing_entries(s, book.id, ORIGIN.value)
                diff = diff_read(existing, read.contacts, read.deleted, read.full)
                refusal = self._guard(email, title, len(existing), len(diff.removes))
                if refusal:
                    s.rollback()
                    return self._fail(email, refusal)
                if self.dry_run:
                    s.rollback()
                    for line in diff.lines():
                        log.info("%s: %s", email, line)
                else:
                    apply(s, book, diff, ORIGIN.value, self.settings.default_region,
                          self.settings.area_code, known)
                    self._store_states(s, user_id, book.id, email, read.states)
        except Exception as exc:  # noqa: BLE001 - the transaction is rolled back, others go on
            log.debug("write for %s failed", email, exc_info=True)
            failure = database_failure(exc, self.db.url)
            if failure is not None:
                return UserResult(email, "failed", message=failure.message, fatal=failure)
            return self._fail(email, f"writing the phonebook failed, it is unchanged: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        mode = "full" if read.full else "incremental"
        prefix = "would be: " if self.dry_run else ""
        log.info("%s: %s%s (%s, %s)", email, prefix, diff.summary(), mode, read.api)
        return UserResult(email, "ok", diff=diff.counts(), full=read.full)

    def _guard(self, email: str, title: str, synced: int, removes: int) -> str:
        return guard.refusal(title, synced, removes, self.settings.guard_percent, self.force,
                             f"ucware-contactsync sync --force --user {email}")

    def _store_states(self, s: Session, user_id: int, book_id: int, email: str,
                      states: dict[str, str]) -> None:
        """This phonebook's states; every other state of the user's phonebooks (another
        title, mailbox or API) goes."""
        books = select(Phonebook.id).where(Phonebook.owner_id == user_id)
        store(s, SyncState.phonebook_id.in_(books), book_id, email.lower(), self.source.api,
              states)


def log_result(result: RunResult) -> None:
    for u in result.users:
        if u.status == "skipped":
            log.warning("%s: skipped: %s", u.email, u.message)
    if result.aborted:
        log.error("error: %s", result.aborted)
    log.log(logs.NOTICE, result.summary())

