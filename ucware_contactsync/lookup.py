"""Caller-ID: which phonebook entries own a number, whatever format it arrives in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from .model import Entry, Number, Phonebook, User, table_of
from .phone import caller_keys, to_e164

REFRESH_BATCH = 5000


def lookup(session: Session, caller: str, region: str, owner: User | None = None,
           area_code: str = "") -> list[dict[str, Any]]:
    """Matches for ``caller``: exact E.164 first; else the switchboard (``-0``) of its company.

    Each hit's written number must still give its stored E.164 under today's rules: an E.164
    stored by an older version for a number that is no valid caller-ID (a guess) is skipped.
    Shared (company) phonebooks have no owner (``"owner": None``); with ``owner`` a user sees
    their own phonebooks first, then the shared ones.
    """
    exact, board = caller_keys(caller, region, area_code)
    for keys, switchboard in ((exact, False), (board, True)):
        if not keys:
            continue
        q = (
            select(User.email, Phonebook.title, Entry.display_name, Number.type, Number.number,
                   Number.e164)
            .join(Entry, Number.entry_id == Entry.id)
            .join(Phonebook, Entry.phonebook_id == Phonebook.id)
            .outerjoin(User, Phonebook.owner_id == User.id)
            .where(Number.e164.in_(keys))
            # Personal phonebooks first (with --user: that user's own), then the shared ones.
            .order_by(Phonebook.owner_id.is_(None), User.email_key, Phonebook.title,
                      Entry.display_name, Number.id)
        )
        if owner is not None:
            q = q.where((Phonebook.owner_id == owner.id) | Phonebook.owner_id.is_(None))
        rows = [r for r in session.execute(q).all()
                if to_e164(r.number, region, area_code) == r.e164]
        if switchboard:  # candidates only count when written with a "-0" suffix
            rows = [r for r in rows if r.number.replace(" ", "").endswith("-0")]
        rows = _best_key(rows, keys)
        if rows:
            return [
                {"owner": r.email, "phonebook": r.title, "display_name": r.display_name,
                 "type": r.type, "number": r.number, "e164": r.e164}
                for r in rows
            ]
    return []



class _Hit(Protocol):
    @property
    def e164(self) -> str | None: ...


_R = TypeVar("_R", bound=_Hit)


def _best_key(rows: Sequence[_R], keys: list[str]) -> list[_R]:
    """Only the hits of the first key that has any (keys are ordered by preference)."""
    for key in keys:
        hits = [r for r in rows if r.e164 == key]
        if hits:
            return hits
    return []


def refresh_e164(conn: Connection, region: str, area_code: str = "") -> int:
    """Recompute every stored E.164 under today's rules (after ``default_region`` or
    ``area_code`` changed, and once on upgrade from a version with looser rules); returns
    how many changed. Works on a plain connection, so the migration can use it too."""
    table = table_of(Number)
    changed = 0
    last = 0
    while True:
        rows = conn.execute(
            select(table.c.id, table.c.number, table.c.e164)
            .where(table.c.id > last).order_by(table.c.id).limit(REFRESH_BATCH)
        ).all()
        if not rows:
            return changed
        last = rows[-1].id
        new = [{"nid": r.id, "e": e} for r in rows
               if (e := to_e164(r.number, region, area_code)) != r.e164]
        if new:
            conn.execute(update(table).where(table.c.id == bindparam("nid"))
                         .values(e164=bindparam("e")), new)
            changed += len(new)
