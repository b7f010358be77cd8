"""Caller-ID: which phonebook entries own a number, whatever format it arrives in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .model import Entry, Number, Phonebook, User
from .phone import lookup_keys


def lookup(session: Session, caller: str, region: str, owner: User | None = None
           ) -> list[dict[str, Any]]:
    """Matches for ``caller``: exact E.164 first; else the switchboard (``-0``) of its company."""
    keys = lookup_keys(caller, region)
    for i, key in enumerate(keys):
        q = (
            select(User.email, Phonebook.title, Entry.display_name, Number.type, Number.number,
                   Number.e164)
            .join(Entry, Number.entry_id == Entry.id)
            .join(Phonebook, Entry.phonebook_id == Phonebook.id)
            .join(User, Phonebook.owner_id == User.id)
            .where(Number.e164 == key)
            .order_by(User.email_key, Phonebook.title, Entry.display_name, Number.id)
        )
        if owner is not None:
            q = q.where(Phonebook.owner_id == owner.id)
        rows = session.execute(q).all()
        if i > 0:  # switchboard candidates only count when written with a "-0" suffix
            rows = [r for r in rows if r.number.replace(" ", "").endswith("-0")]
        if rows:
            return [
                {"owner": r.email, "phonebook": r.title, "display_name": r.display_name,
                 "type": r.type, "number": r.number, "e164": r.e164}
                for r in rows
            ]
    return []
