"""The phonebook writer: diff a phonebook against what a source says, apply the diff.

Used by the Office 365 sync and the CSV import alike. Only entries whose ``origin`` is the
importing kind are ever compared, updated or removed; hand-typed entries (``source_id`` None)
are invisible here. The caller owns the transaction: one user's diff commits as one unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session, selectinload

from . import history
from .contact import Contact, PhoneNumber
from .db import insert_many
from .model import (
    ID_LEN,
    NAME_LEN,
    NUMBER_LEN,
    Entry,
    Number,
    Phonebook,
    User,
    table_of,
    utcnow,
)
from .ownership import Origin, may_write, origin_of
from .phone import to_e164

T = TypeVar("T")

CHUNK = 500
ENTRIES = table_of(Entry)
NUMBERS = table_of(Number)


@dataclass(slots=True)  # one per entry of a phonebook: 140,000 for a big file import
class ExistingEntry:
    id: int
    source_id: str
    content_hash: str | None
    change_key: str | None
    display_name: str


@dataclass(frozen=True)
class DiffCounts:
    """How many entries a diff changed: what a run keeps per user (not the contacts)."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, "
                f"{self.removed} removed, {self.unchanged} unchanged")

    @staticmethod
    def total(counts: Iterable[DiffCounts | None]) -> DiffCounts:
        """The sum of several diffs' counts (a run's summary line)."""
        done = [c for c in counts if c is not None]
        return DiffCounts(sum(c.added for c in done), sum(c.updated for c in done),
                          sum(c.removed for c in done), sum(c.unchanged for c in done))


@dataclass
class Diff:
    """What applying a source's view to one phonebook changes."""

    adds: list[Contact] = field(default_factory=list)
    updates: list[tuple[ExistingEntry, Contact]] = field(default_factory=list)
    removes: list[ExistingEntry] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.adds or self.updates or self.removes)

    def counts(self) -> DiffCounts:
        return DiffCounts(len(self.adds), len(self.updates), len(self.removes), self.unchanged)

    def summary(self) -> str:
        return self.counts().summary()

    def lines(self) -> list[str]:
        """Human-readable diff for --dry-run."""
        out = [f"+ {c.name}" for c in self.adds]
        out += [f"~ {c.name}" for _, c in self.updates]
        out += [f"- {e.display_name}" for e in self.removes]
        return out


def _cut(value: str, limit: int = NAME_LEN) -> str:
    return value if len(value) <= limit else value[:limit]


# Control characters other than tab and newline (C0, DEL, C1), and lone surrogates: what
# the phonebook never stores, on every database alike. PostgreSQL refuses NUL outright (one
# contact would fail the user's phonebook every night), EWS hands over what Exchange writes
# as "&#x1;", phones show them as garbage. Emoji and other printable text stay as they are.
_UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _clean(value: str) -> str:
    return value if value.isprintable() else _UNSTORABLE.sub("", value)


def clean_title(title: str) -> str:
    """A phonebook title as stored and shown: one line, without control characters (the
    same cleaning as entry text; tab and line breaks become spaces), trimmed."""
    if title.isprintable():
        return title.strip()
    return _UNSTORABLE.sub("", title.replace("\t", " ").replace("\n", " ")).strip()


# Statements run once per phonebook and run: built once (building one costs more than
# SQLAlchemy's cached execution of it).
_EXISTING = (
    select(Entry.id, Entry.source_id, Entry.content_hash, Entry.change_key, Entry.display_name)
    .where(Entry.phonebook_id == bindparam("book"), Entry.origin == bindparam("origin"),
           Entry.source_id.is_not(None))
    # In pieces: a phonebook of 140,000 entries is not also held as a list of rows.
    .execution_options(yield_per=CHUNK * 4)
)
_IDS_BY_SOURCE = select(ENTRIES.c.source_id, ENTRIES.c.id).where(
    ENTRIES.c.phonebook_id == bindparam("book"), ENTRIES.c.origin == bindparam("origin"),
    ENTRIES.c.source_id.in_(bindparam("sids", expanding=True)))
_TOUCH = update(Phonebook).where(Phonebook.id == bindparam("book")).values(
    updated_at=bindparam("now", type_=table_of(Phonebook).c.updated_at.type))
_BY_TITLE = select(Phonebook).where(Phonebook.owner_id == bindparam("owner"),
                                    Phonebook.title == bindparam("title"))


def existing_entries(session: Session, phonebook_id: int, origin: str) -> dict[str, ExistingEntry]:
    rows = session.execute(_EXISTING, {"book": phonebook_id, "origin": origin})
    return {r.source_id: ExistingEntry(r.id, r.source_id, r.content_hash, r.change_key,
                                       r.display_name)
            for r in rows if r.source_id is not None}


def _classify(existing: dict[str, ExistingEntry], contacts: Iterable[Contact]
              ) -> tuple[Diff, set[str]]:
    """Adds, updates and unchanged for ``contacts``; the ids seen. A later copy of the same
    item wins (an incremental read may carry a create and an update of one item)."""
    latest: dict[str, Contact] = {}
    for c in contacts:
        assert c.source_id is not None
        latest[c.source_id] = c
    diff = Diff()
    for sid, c in latest.items():
        old = existing.get(sid)
        if old is None:
            diff.adds.append(c)
        elif old.content_hash != c.content_hash():
            diff.updates.append((old, c))
        else:
            diff.unchanged += 1
    return diff, set(latest)


def diff_full(existing: dict[str, ExistingEntry], contacts: Iterable[Contact]) -> Diff:
    """Diff for a complete view of the source: what is not in ``contacts`` is removed."""
    diff, seen = _classify(existing, contacts)
    diff.removes = [e for sid, e in existing.items() if sid not in seen]
    _relink(diff)
    return diff


def _relink(diff: Diff) -> None:
    diff.adds, diff.removes = relink(diff.adds, diff.removes, diff.updates,
                                     lambda c: c.content_hash())


def relink(adds: list[T], removes: list[ExistingEntry],
           updates: list[tuple[ExistingEntry, T]],
           content_hash: Callable[[T], str]) -> tuple[list[T], list[ExistingEntry]]:
    """An added contact identical to a removed entry is the same item under a new id (e.g.
    ids that changed encoding when a tenant moved from EWS to Graph): keep the entry and
    give it the new id, instead of deleting and re-adding it. Appends those pairs to
    ``updates``; returns the adds and removes left. ``T``: a contact, or a CSV import's
    packed record."""
    if not adds or not removes:
        return adds, removes
    by_hash: dict[str, list[ExistingEntry]] = {}
    for e in removes:
        if e.content_hash:
            by_hash.setdefault(e.content_hash, []).append(e)
    left: list[T] = []
    for item in adds:
        matches = by_hash.get(content_hash(item))
        if matches:
            updates.append((matches.pop(), item))
        else:
            left.append(item)
    relinked = {id(old) for old, _ in updates}
    return left, [e for e in removes if id(e) not in relinked]


def diff_changes(existing: dict[str, ExistingEntry], upserts: Iterable[Contact],
                 deletes: Iterable[str]) -> Diff:
    """Diff for an incremental read: only the named items change; the rest is unchanged."""
    diff, seen = _classify(existing, upserts)
    diff.removes = [existing[sid] for sid in set(deletes) - seen if sid in existing]
    diff.unchanged = len(existing) - len(diff.updates) - len(diff.removes)
    return diff


def diff_read(existing: dict[str, ExistingEntry], contacts: Sequence[Contact],
              deleted: Iterable[str], full: bool) -> Diff:
    """The diff of a source's read (full or incremental). A phonebook is for calling:
    contacts without any number are left out, and one that lost its last number leaves."""
    callable_ = [c for c in contacts if c.numbers]
    if full:
        return diff_full(existing, callable_)
    gone = [c.source_id for c in contacts if not c.numbers and c.source_id]
    return diff_changes(existing, callable_, [*deleted, *gone])


def entry_values(c: Contact) -> dict[str, Any]:
    """Column values of an entry; over-long texts are cut to the column length, control
    characters other than tab and newline dropped."""
    return {
        "display_name": _cut(_clean(c.name)),
        "given_name": _cut(_clean(c.given_name)),
        "surname": _cut(_clean(c.surname)),
        "company": _cut(_clean(c.company)),
        "department": _cut(_clean(c.department)),
        "job_title": _cut(_clean(c.job_title)),
        "emails": [_clean(e) for e in c.emails],
        "categories": [_clean(x) for x in c.categories],
        "source_id": c.source_id,
        "change_key": _cut(c.change_key, ID_LEN) if c.change_key else None,
        "content_hash": c.content_hash(),
    }


def written_numbers(contacts: Iterable[Contact]) -> Iterator[str]:
    """The numbers of ``contacts`` as ``number_rows`` stores and normalises them."""
    return (_clean(n.number) for c in contacts for n in c.numbers)


def number_rows(entry_id: int, numbers: Sequence[PhoneNumber], region: str,
                area_code: str = "", known: Mapping[str, str | None] | None = None
                ) -> list[dict[str, Any]]:
    """Rows of an entry's numbers; ``known``: E.164 already computed (``sync/numbers.py``)
    for some of them, with the same ``region`` and ``area_code``."""
    known = known or {}
    rows = []
    for i, n in enumerate(numbers):
        number = _clean(n.number)
        e164 = known[number] if number in known else to_e164(number, region, area_code)
        rows.append({"entry_id": entry_id, "position": i, "type": n.type,
                     "number": _cut(number, NUMBER_LEN), "e164": e164})
    return rows


def apply(session: Session, phonebook: Phonebook, diff: Diff, origin: str, region: str,
          area_code: str = "", known: Mapping[str, str | None] | None = None) -> None:
    """Write ``diff`` into ``phonebook`` inside the caller's transaction; the active run's
    history (if any) gets every changed entry in the same transaction. ``known``: see
    ``number_rows``."""
    if diff.empty:
        return
    rec = history.recorder()
    before = history.load_snapshots(
        session, [e.id for e in diff.removes] + [old.id for old, _ in diff.updates]
    ) if rec is not None and rec.enabled(session) else None
    now = utcnow()
    for i in range(0, len(diff.removes), CHUNK):
        ids = [e.id for e in diff.removes[i:i + CHUNK]]
        session.execute(delete(Number).where(Number.entry_id.in_(ids)))
        session.execute(delete(Entry).where(Entry.id.in_(ids)))
    # (entry id, values, numbers)
    written: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
    if diff.updates:
        rows = [{"id": old.id, "updated_at": now, **entry_values(c)} for old, c in diff.updates]
        session.execute(update(Entry), rows)
        ids = [old.id for old, _ in diff.updates]
        for i in range(0, len(ids), CHUNK):
            session.execute(delete(Number).where(Number.entry_id.in_(ids[i:i + CHUNK])))
        nums = _insert_numbers(session, [(old.id, c) for old, c in diff.updates], region,
                               area_code, known)
        written += zip(ids, rows, nums, strict=True)
    for i in range(0, len(diff.adds), CHUNK):
        batch = diff.adds[i:i + CHUNK]
        rows = [{"phonebook_id": phonebook.id, "origin": origin, "created_at": now,
                 "updated_at": now, **entry_values(c)} for c in batch]
        new_ids = _insert_entries(session, phonebook.id, origin, rows)
        nums = _insert_numbers(session, list(zip(new_ids, batch, strict=True)), region,
                               area_code, known)
        written += zip(new_ids, rows, nums, strict=True)
    session.execute(_TOUCH, {"book": phonebook.id, "now": now})
    if before is not None and rec is not None:
        rec.add(session, phonebook, history.changes_of(diff.removes, before, written, origin))


def _insert_entries(session: Session, phonebook_id: int, origin: str,
                    rows: list[dict[str, Any]]) -> list[int]:
    """Insert entry rows; returns their ids in the order of ``rows``. Core inserts on the
    table, without the ORM bulk layer's per-row bookkeeping (a third of the write time at
    100k rows)."""
    sids = [r["source_id"] for r in rows]
    if None in sids:
        return list(session.scalars(
            insert(ENTRIES).returning(ENTRIES.c.id, sort_by_parameter_order=True), rows).all())
    # Every row has a source id, unique in (phonebook, origin) by the table's constraint: one
    # executemany, then the ids by source id. (RETURNING in the order of the rows costs SQLite
    # one statement per row.)
    insert_many(session, ENTRIES, rows)
    ids = {sid: entry_id for sid, entry_id in session.execute(
        _IDS_BY_SOURCE, {"book": phonebook_id, "origin": origin, "sids": sids})}
    return [ids[sid] for sid in sids]


def _insert_numbers(session: Session, pairs: list[tuple[int, Contact]], region: str,
                    area_code: str, known: Mapping[str, str | None] | None
                    ) -> list[list[dict[str, Any]]]:
    """Insert the numbers of each (entry id, contact); returns each entry's number rows."""
    per_entry = [number_rows(entry_id, c.numbers, region, area_code, known)
                 for entry_id, c in pairs]
    rows = [r for entry in per_entry for r in entry]
    for i in range(0, len(rows), CHUNK * 4):
        insert_many(session, NUMBERS, rows[i:i + CHUNK * 4])
    return per_entry


def get_phonebook(session: Session, owner: User, title: str) -> Phonebook | None:
    return session.scalar(_BY_TITLE, {"owner": owner.id, "title": title})


def ensure_phonebook(session: Session, owner: User, title: str, source: str) -> Phonebook:
    book = get_phonebook(session, owner, title)
    if book is None:
        book = Phonebook(owner=owner, title=title, source=source)
        session.add(book)
        session.flush()
    return book


class PhonebookClash(Exception):
    """A writer may not write a phonebook (``ownership.may_write``): names both sides."""

    def __init__(self, owner_email: str, title: str, owner: Origin | None, writer: Origin,
                 reserved: Origin | None) -> None:
        self.title, self.owner, self.writer = title, owner, writer
        if owner is None:  # a reserved title nobody else may create
            what = f"phonebook {title!r} of {owner_email} is {(reserved or writer).label}"
        else:
            what = f"phonebook {title!r} of {owner_email} exists and is {owner.label}"
        super().__init__(what)


def reserved_for(session: Session, owner: User, title: str, sync_title: str) -> Origin | None:
    """The synced origin that keeps ``title`` for ``owner``: the mailbox sync for its own
    title (``phonebookname``) of a user it selects; None for every other title."""
    if title != sync_title:
        return None
    from .directory import selected_users  # directory is the UC server's side, not ours

    return Origin.MAILBOX if any(u.id == owner.id for u in selected_users(session)) else None


def writable_phonebook(session: Session, owner: User, title: str, writer: Origin,
                       reserved: Origin | None = None, create: bool = True) -> Phonebook | None:
    """The phonebook ``title`` of ``owner`` for ``writer`` to write, created if missing (with
    ``create``; else None). Raises ``PhonebookClash`` when ``ownership.may_write`` says no."""
    book = get_phonebook(session, owner, title)
    current = origin_of(book.source) if book is not None else None
    after = may_write(current, writer, reserved)
    if after is None:
        raise PhonebookClash(owner.email or "", title, current, writer, reserved)
    if book is None and create:
        book = Phonebook(owner=owner, title=title, source=after.value)
        session.add(book)
        session.flush()
    return book


def add_manual_entry(session: Session, book: Phonebook, contact: Contact, region: str,
                     area_code: str = "") -> Entry:
    """An entry as a user types it in the UCC client: no origin, no source id."""
    values = entry_values(contact)
    values.update(source_id=None, change_key=None)
    entry = Entry(phonebook=book, origin=None, **values)
    entry.numbers = [Number(**{k: v for k, v in r.items() if k != "entry_id"})
                     for r in number_rows(0, contact.numbers, region, area_code)]
    session.add(entry)
    session.flush()
    return entry


def to_json(book: Phonebook) -> dict[str, Any]:
    return {
        "owner": book.owner.email if book.owner is not None else None,
        "name": book.title,
        "source": book.source,
        "entries": [
            {
                "display_name": e.display_name,
                "given_name": e.given_name,
                "surname": e.surname,
                "company": e.company,
                "department": e.department,
                "job_title": e.job_title,
                "emails": list(e.emails or []),
                "numbers": [{"type": n.type, "number": n.number, "e164": n.e164}
                            for n in e.numbers],
                "source_id": e.source_id,
            }
            for e in book.entries
        ],
    }


def load_phonebooks(session: Session, owner: User | None = None) -> list[Phonebook]:
    """Every phonebook (personal ones by owner, then the shared ones), or one user's own
    phonebooks followed by the shared ones every user sees."""
    q = (select(Phonebook).outerjoin(Phonebook.owner)
         .options(selectinload(Phonebook.owner),
                  selectinload(Phonebook.entries).selectinload(Entry.numbers))
         .order_by(Phonebook.owner_id.is_(None), User.email_key, Phonebook.title))
    if owner is not None:
        q = q.where((Phonebook.owner_id == owner.id) | Phonebook.owner_id.is_(None))
    return list(session.scalars(q))
