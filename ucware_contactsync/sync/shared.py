"""Shared (company) phonebooks: the directory, shared mailboxes and public folders.

A shared phonebook has no owner; every UC user sees it. It is written with the same phonebook
writer as a personal one and keeps its promises: only changed entries are written, all of a
phonebook's changes commit together, hand-typed entries are never touched, a read that would
empty a full phonebook needs ``--force``, a dry run writes nothing. One phonebook's failure
fails that phonebook only. A shared phonebook never takes over a phonebook of the same title
that someone else keeps (typed by hand, CSV, or another shared source).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import logs
from ..db import Database, database_failure
from ..errors import EXIT_OK, EXIT_PARTIAL
from ..model import Phonebook, SyncState
from ..ownership import Origin, may_write
from ..phonebook import DiffCounts, apply, diff_read, existing_entries
from ..settings import Settings
from ..sources import ContactSource, Kind, MailboxRead, SourceError
from . import guard
from .states import store

log = logs.get("sync")

LABELS = {"directory": "directory", "shared-mailbox": "shared mailbox",
          "public-folder": "public folder"}


@dataclass(frozen=True)
class SharedBook:
    """What fills one shared phonebook."""

    kind: str  # directory | shared-mailbox | public-folder
    title: str
    mailbox: str | None = None
    folder: str | None = None

    @property
    def state_key(self) -> str:
        """``SyncState.mailbox`` of its states: the mailbox, else what it is read from."""
        return (self.mailbox or f"{self.kind}:{self.folder or ''}").lower()[:320]

    @property
    def label(self) -> str:
        where = self.mailbox or self.folder or ""
        if self.mailbox and self.folder:
            where = f"{self.mailbox}, folder {self.folder}"
        where = f": {where}" if where else ""
        return f"shared phonebook {self.title!r} ({LABELS[self.kind]}{where})"


@dataclass
class SharedResult:
    book: SharedBook
    status: str  # ok | failed
    diff: DiffCounts | None = None
    message: str = ""


@dataclass
class SharedRun:
    results: list[SharedResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def failed(self) -> list[SharedResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def summary(self) -> str:
        ok = [r for r in self.results if r.status == "ok" and r.diff]
        t = DiffCounts.total(r.diff for r in ok)
        verb = "would be" if self.dry_run else "synced"
        return (f"shared phonebooks: {len(ok)} {verb}, {len(self.failed)} failed; "
                f"{t.added} added, {t.updated} updated, {t.removed} removed in "
                f"{self.seconds:.1f} s")


def configured(session: Session, settings: Settings) -> list[SharedBook]:
    """The directory phonebook (key directory_phonebook) and every `shared add` phonebook."""
    books = []
    if settings.directory_phonebook:
        books.append(SharedBook("directory", settings.directory_phonebook))
    rows = session.scalars(select(Phonebook).where(
        Phonebook.owner_id.is_(None), Phonebook.source.in_(("shared-mailbox", "public-folder")))
        .order_by(Phonebook.title))
    books += [SharedBook(r.source, r.title, r.mailbox, r.folder) for r in rows]
    return books


def find_shared(session: Session, title: str) -> Phonebook | None:
    return session.scalar(select(Phonebook).where(Phonebook.owner_id.is_(None),
                                                  Phonebook.title == title))


def owns(book: Phonebook, target: SharedBook) -> bool:
    """Whether ``target`` may write ``book``: the ownership rule, and for mailboxes and public
    folders the same place (two shared mailboxes never share one phonebook)."""
    if may_write(book.source, Origin(target.kind)) is None:
        return False
    return ((book.mailbox or "").lower() == (target.mailbox or "").lower()
            and (book.folder or "") == (target.folder or ""))


class SharedSync:
    """Reads and writes the shared phonebooks one after the other."""

    def __init__(self, database: Database, settings: Settings,
                 open_source: Callable[[SharedBook], ContactSource], *, dry_run: bool = False,
                 full: bool = False, force: bool = False, read_as: str = "") -> None:
        self.db = database
        self.settings = settings
        self.open_source = open_source
        self.dry_run = dry_run
        self.full = full
        self.force = force
        self.read_as = read_as  # public folders without a mailbox are read as this user

    def run(self, books: list[SharedBook]) -> SharedRun:
        started = time.monotonic()
        run = SharedRun(dry_run=self.dry_run)
        for book in books:
            run.results.append(self._one(book))
        run.seconds = time.monotonic() - started
        return run

    def _one(self, book: SharedBook) -> SharedResult:
        try:
            with self.db.session() as s:
                existing = find_shared(s, book.title)
                if existing is not None and not owns(existing, book):
                    return self._fail(book, self._taken(existing))
                states = ({} if self.full or existing is None
                          else self._states(s, existing.id, book))
            source = self.open_source(book)
            try:
                read = self._read(source, book, states)
            finally:
                source.close()
        except SourceError as exc:
            return self._fail(book, str(exc))
        except Exception as exc:  # noqa: BLE001 - one phonebook's failure never stops the rest
            log.debug("reading %s crashed", book.label, exc_info=True)
            return self._fail(book, f"reading failed: {type(exc).__name__}: {exc}")
        return self._write(book, read)

    def _read(self, source: ContactSource, book: SharedBook, states: dict[str, str]
              ) -> MailboxRead:
        where = book.mailbox or (self.read_as if book.kind == "public-folder" else "directory")
        if not where:
            raise SourceError(Kind.MAILBOX_MISSING, "no mailbox to read the public folder as",
                              "name one: 'shared add MAILBOX --public-folder PATH --phonebook "
                              "TITLE' (its user needs read access to the folder)")
        try:
            return source.read(where, states or None)
        except SourceError as exc:
            if exc.kind is Kind.STATE_INVALID and states:
                log.info("%s: %s; reading everything again", book.label, exc.message)
                return source.read(where, None)
            raise

    @staticmethod
    def _taken(book: Phonebook) -> str:
        keeper = Origin(book.source).label
        if book.mailbox or book.folder:
            keeper += f" {book.mailbox or book.folder}"
        return (f"a shared phonebook with this title already exists ({keeper}) and is left "
                "alone; choose another title")

    @staticmethod
    def _states(s: Session, book_id: int, book: SharedBook) -> dict[str, str]:
        """The states of this phonebook read from this place (any API: a source refuses the
        states of another API as invalid and reads in full)."""
        rows = s.scalars(select(SyncState).where(SyncState.phonebook_id == book_id,
                                                 SyncState.mailbox == book.state_key))
        return {r.folder_id: r.state for r in rows}

    def _guard(self, title: str, synced: int, removes: int) -> str:
        return guard.refusal(title, synced, removes, self.settings.guard_percent, self.force,
                             "ucware-contactsync sync --force")

    def _fail(self, book: SharedBook, message: str) -> SharedResult:
        log.error("%s: FAILED: %s", book.label, message)
        return SharedResult(book, "failed", message=message)

    def _write(self, book: SharedBook, read: MailboxRead) -> SharedResult:
        try:
            with self.db.session() as s:
                pb = find_shared(s, book.title)
                if pb is None:
                    pb = Phonebook(owner_id=None, title=book.title, source=book.kind,
                                   mailbox=book.mailbox, folder=book.folder)
                    s.add(pb)
                    s.flush()
                elif not owns(pb, book):  # made by someone else while we were reading
                    s.rollback()
                    return self._fail(book, self._taken(pb))
                existing = existing_entries(s, pb.id, book.kind)
                # A phonebook is for calling: entries without a number are left out.
                diff = diff_read(existing, read.contacts, read.deleted, read.full)
                refusal = self._guard(book.title, len(existing), len(diff.removes))
                if refusal:
                    s.rollback()
                    return self._fail(book, refusal)
                if self.dry_run:
                    s.rollback()
                    for line in diff.lines():
                        log.info("%s: %s", book.label, line)
                else:
                    apply(s, pb, diff, book.kind, self.settings.default_region,
                          self.settings.area_code)
                    store(s, SyncState.phonebook_id == pb.id, pb.id, book.state_key, read.api,
                          read.states)
        except Exception as exc:  # noqa: BLE001 - rolled back; the other phonebooks go on
            log.debug("write of %s failed", book.label, exc_info=True)
            failure = database_failure(exc, self.db.url)
            text = failure.message if failure else f"{type(exc).__name__}: {exc}"
            return self._fail(book, f"writing failed, the phonebook is unchanged: {text}")
        prefix = "would be: " if self.dry_run else ""
        log.info("%s: %s%s (%s, %s)", book.label, prefix, diff.summary(),
                 "full" if read.full else "incremental", read.api)
        return SharedResult(book, "ok", diff=diff.counts())


