"""Undo a recorded run: put back what it changed, one transaction per phonebook.

An entry is only put back while it is exactly as the run left it; one that a later run or a
person changed since is refused, with one line, and the rest of its phonebook is still undone.
Restored entries keep their source ids: a synced contact restored in Outlook is matched again,
not duplicated. For a sync the mailbox stays the source of truth, so the undone phonebooks
lose their stored sync states: the next run reads them in full and mirrors the mailbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from . import history, logs
from .db import Database
from .errors import UsageError
from .history import Change4, Snapshot
from .model import Change, Entry, Number, Phonebook, Run, SyncState, table_of, utcnow

log = logs.get("undo")

# Entries of these origins come from a file: their undo is final. Every other origin is
# kept current by a sync, which will make the same changes again.
FILE_ORIGINS = frozenset({"csv", "vcard"})
_VALUES = ("display_name", "given_name", "surname", "company", "department", "job_title",
           "emails", "categories", "origin", "source_id", "change_key", "content_hash")


@dataclass
class BookUndo:
    owner: str | None
    title: str
    put_back: int = 0  # removed entries restored
    reverted: int = 0  # updated entries back to their old values
    taken_out: int = 0  # added entries removed again
    refused: list[str] = field(default_factory=list)
    synced: bool = False

    def summary(self) -> str:
        refused = f"; {len(self.refused)} refused" if self.refused else ""
        return (f"{self.owner or '(shared)'} / {self.title}: {self.put_back} restored, "
                f"{self.reverted} reverted, {self.taken_out} removed{refused}")


@dataclass
class UndoResult:
    run: int
    command: str
    books: list[BookUndo] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(len(b.refused) for b in self.books)

    @property
    def synced(self) -> bool:
        return any(b.synced for b in self.books)


def undo(database: Database, run_id: int, owner: str | None = None, dry_run: bool = False
         ) -> UndoResult:
    with database.session() as s:
        run = s.get(Run, run_id)
        if run is None:
            raise UsageError(f"there is no run {run_id}",
                             "'ucware-contactsync history' lists the runs")
        found = history.changes(s, run_id, owner)
        result = UndoResult(run_id, run.command)
    if not found:
        who = f" of {owner}" if owner else ""
        raise UsageError(f"run {run_id} ({result.command}) changed no phonebook{who}",
                         "'ucware-contactsync history show RUN' lists what a run changed")
    groups: dict[int, list[Change]] = {}
    for c in found:
        groups.setdefault(c.phonebook_id, []).append(c)
    for book_id, items in groups.items():
        with database.session() as s:
            book = BookUndo(items[0].owner, items[0].phonebook)
            done = _undo_book(s, book_id, items, book, run_id)
            if dry_run:
                s.rollback()
            elif done:
                rec = history.recorder()
                pb = s.get(Phonebook, book_id)
                if rec is not None and pb is not None:
                    rec.add(s, pb, done)
                if book.synced and pb is not None:
                    # The next run reads this mailbox in full (see the module docstring).
                    s.execute(delete(SyncState).where(SyncState.phonebook_id == pb.id))
        result.books.append(book)
    return result


def _undo_book(s: Session, book_id: int, items: Sequence[Change], book: BookUndo,
               run_id: int) -> list[Change4]:
    """Undo one phonebook's changes in ``s``; returns what was changed (for the history)."""
    where = f"{book.owner or '(shared)'} / {book.title}"
    pb = s.get(Phonebook, book_id)
    if pb is None:
        book.refused.append(f"{where}: the phonebook no longer exists; nothing of it was "
                            "restored")
        return []
    current = history.load_snapshots(s, [c.entry_id for c in items if c.action != "removed"])
    back = _present(s, book_id, [history.loads(c.before) for c in items
                                 if c.action == "removed"])
    done: list[Change4] = []
    now = utcnow()
    for c in reversed(items):
        before, after = history.loads(c.before), history.loads(c.after)
        snap = before or after or {}
        book.synced |= snap.get("origin") not in FILE_ORIGINS
        name = snap.get("display_name") or "(no name)"

        def refuse(why: str, name: str = name) -> None:
            book.refused.append(f"{where}: {name!r} {why} since run {run_id}; left as it is")

        if c.action == "added":
            cur = current.get(c.entry_id)
            if cur is None:
                continue  # gone already: nothing to undo
            if not history.same(cur, after):
                refuse("was changed")
                continue
            s.execute(delete(Number).where(Number.entry_id == c.entry_id))
            s.execute(delete(Entry).where(Entry.id == c.entry_id))
            done.append(("removed", c.entry_id, cur, None))
            book.taken_out += 1
        elif c.action == "updated":
            cur = current.get(c.entry_id)
            if cur is None or before is None:
                refuse("was removed")
                continue
            if not history.same(cur, after):
                refuse("was changed")
                continue
            s.execute(update(Entry).where(Entry.id == c.entry_id)
                      .values(updated_at=now, **{k: before[k] for k in _VALUES}))
            s.execute(delete(Number).where(Number.entry_id == c.entry_id))
            _numbers(s, c.entry_id, before)
            done.append(("updated", c.entry_id, cur, before))
            book.reverted += 1
        elif before is not None:
            if (before.get("origin"), before.get("source_id")) in back:
                refuse("is in the phonebook again")
                continue
            new_id = s.scalars(insert(table_of(Entry)).returning(table_of(Entry).c.id), [{
                "phonebook_id": book_id, "created_at": now, "updated_at": now,
                **{k: before[k] for k in _VALUES}}]).one()
            _numbers(s, new_id, before)
            done.append(("added", new_id, None, before))
            book.put_back += 1
    return done


def _present(s: Session, book_id: int, snaps: Sequence[Snapshot | None]
             ) -> set[tuple[str | None, str]]:
    """(origin, source id) of the removed entries that are in the phonebook again."""
    ids = [x["source_id"] for x in snaps if x and x.get("source_id")]
    found: set[tuple[str | None, str]] = set()
    for i in range(0, len(ids), history.CHUNK):
        rows = s.execute(select(Entry.origin, Entry.source_id).where(
            Entry.phonebook_id == book_id, Entry.source_id.in_(ids[i:i + history.CHUNK])))
        found.update((r.origin, r.source_id) for r in rows)
    return found


def _numbers(s: Session, entry_id: int, snap: Snapshot) -> None:
    """The numbers exactly as recorded: as written, E.164 and type, in their order."""
    rows = [{"entry_id": entry_id, "position": i, "type": n["type"], "number": n["number"],
             "e164": n["e164"]} for i, n in enumerate(snap["numbers"])]
    if rows:
        s.execute(insert(table_of(Number)), rows)
