"""Stored sync states (EWS SyncState, Graph deltaLink per folder): how a write replaces them."""

from __future__ import annotations

from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.orm import Session

from ..model import SyncState, utcnow


def store(s: Session, scope: ColumnElement[bool], book_id: int, mailbox: str, api: str,
          states: dict[str, str]) -> None:
    """Make the states of phonebook ``book_id``, read from ``mailbox`` through ``api``, equal
    ``states``, writing only the rows that differ (an unchanged mailbox often keeps its
    states). Every other state within ``scope`` (another phonebook, mailbox or API) is stale
    once this one has written: it goes."""
    now = utcnow()
    kept: set[str] = set()
    for row in s.scalars(select(SyncState).where(scope)):
        new = states.get(row.folder_id)
        if (row.phonebook_id, row.api, row.mailbox) != (book_id, api, mailbox) \
                or new is None or row.folder_id in kept:
            s.delete(row)
            continue
        kept.add(row.folder_id)
        if row.state != new:
            row.state, row.updated_at = new, now
    s.flush()  # deletes before inserts: (phonebook, api, folder) is unique
    rows = [{"phonebook_id": book_id, "mailbox": mailbox, "api": api, "folder_id": f,
             "state": st, "updated_at": now} for f, st in states.items() if f not in kept]
    if rows:  # Core, not the unit of work: a first sync adds them for every mailbox
        s.execute(insert(SyncState), rows)
