"""What every case shares: the row it reports, and phonebook snapshots to compare.

A case gets an empty migrated database and a scratch directory, provokes its fault, and
returns an ``Outcome``. "Lost" is decided by comparing snapshots: after the fault every
phonebook must equal its state before the run or the fully updated state, never a mix, and
hand-typed and CSV entries must be untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ucware_contactsync.model import Entry, Phonebook, User

# (owner e-mail, phonebook title) -> sorted entries, each a comparable tuple
Snapshot = dict[tuple[str, str], tuple[tuple, ...]]


@dataclass
class Outcome:
    happened: str  # one line: exit code and the message the admin saw
    lost: str = "nothing"  # or what was lost / left half-written
    ok: bool = True  # the run behaved as required (clear error, exit code, recovery)

    @property
    def passed(self) -> bool:
        return self.ok and self.lost == "nothing"


@dataclass
class Case:
    name: str  # short id, used as the pytest id
    fault: str  # the table's first column
    run: Callable[[str, Path, bool], Outcome]  # (empty migrated db url, scratch dir, full)
    backends: tuple[str, ...] = ("sqlite", "mariadb", "postgresql")


def _entry_key(e: Entry) -> tuple:
    numbers = tuple((n.type, n.number, n.e164) for n in sorted(e.numbers,
                                                                 key=lambda n: n.position))
    return (e.origin or "manual", e.source_id or "", e.display_name, e.given_name, e.surname,
            e.company, e.department, e.job_title, tuple(e.emails or ()),
            tuple(e.categories or ()), numbers)


def snapshot(db_url: str) -> Snapshot:
    """Every phonebook with its entries, as plain comparable values."""
    from ucware_contactsync.db import make_engine

    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            books = s.scalars(select(Phonebook).options(
                selectinload(Phonebook.entries).selectinload(Entry.numbers),
                selectinload(Phonebook.owner)))
            snap: Snapshot = {}
            for b in books:
                owner: User = b.owner
                snap[(owner.email or f"#{owner.id}", b.title)] = tuple(
                    sorted(_entry_key(e) for e in b.entries))
            return snap
    finally:
        engine.dispose()


def lost(after: Snapshot, *allowed: Snapshot) -> str:
    """'nothing' if every phonebook of ``after`` equals its state in one of ``allowed``
    (old or new, per phonebook); otherwise a short description of the damage."""
    problems: list[str] = []
    keys = set(after).union(*allowed) if allowed else set(after)
    for key in sorted(keys):
        states = [a.get(key) for a in allowed]
        if after.get(key) in states:
            continue
        now = after.get(key) or ()
        best = min((s or () for s in states), key=lambda s: len(set(s) ^ set(now)))
        missing = len(set(best) - set(now))
        extra = len(set(now) - set(best))
        problems.append(f"{key[0]}/{key[1]}: {missing} entries missing, {extra} unexpected")
    return "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "") or "nothing"


def by_origin(snap: Snapshot, origins: Iterable[str]) -> Snapshot:
    """Only the entries of the given origins (e.g. hand-typed and CSV), for checks that
    a sync never touches them."""
    keep = set(origins)
    return {k: tuple(e for e in v if e[0] in keep) for k, v in snap.items()}


def last_run(db_url: str) -> int:
    """The id of the newest run in the history (0: none yet)."""
    from sqlalchemy import func

    from ucware_contactsync.db import make_engine
    from ucware_contactsync.model import Run

    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            return s.scalar(select(func.max(Run.id))) or 0
    finally:
        engine.dispose()


def _snap_key(snap: dict) -> tuple:
    """A history snapshot as ``_entry_key`` shapes an entry."""
    return (snap["origin"] or "manual", snap["source_id"] or "", snap["display_name"],
            snap["given_name"], snap["surname"], snap["company"], snap["department"],
            snap["job_title"], tuple(snap["emails"]), tuple(snap["categories"]),
            tuple((n["type"], n["number"], n["e164"]) for n in snap["numbers"]))


def history_mismatch(db_url: str, old: Snapshot, new: Snapshot, after_run: int) -> str:
    """'nothing' if the changes recorded by the runs after ``after_run``, replayed on ``old``,
    give exactly ``new`` (history and phonebooks agree: nothing recorded that did not
    commit, nothing committed unrecorded); otherwise which phonebooks disagree."""
    import json

    from ucware_contactsync.db import make_engine
    from ucware_contactsync.model import Change

    engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            changes = list(s.scalars(select(Change).where(Change.run_id > after_run)
                                     .order_by(Change.id)))
    finally:
        engine.dispose()
    books = {k: list(v) for k, v in old.items()}
    for c in changes:
        entries = books.setdefault((c.owner or "", c.phonebook), [])
        if c.before is not None:
            key = _snap_key(json.loads(c.before))
            if key in entries:
                entries.remove(key)
            else:
                entries.append(("not there before", key))
        if c.after is not None:
            entries.append(_snap_key(json.loads(c.after)))
    replayed = {k: tuple(sorted(v, key=repr)) for k, v in books.items()}
    wanted = {k: tuple(sorted(v, key=repr)) for k, v in new.items()}
    bad = [f"{k[0]}/{k[1]}" for k in sorted(set(replayed) | set(wanted))
           if replayed.get(k, ()) != wanted.get(k, ())]
    return "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else "") or "nothing"
