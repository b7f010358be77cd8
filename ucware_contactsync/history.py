"""Run history: what every run that wrote changed, entry by entry, written in the same
transaction as the change itself, so history and phonebook never disagree.

A command runs inside ``recording(command)`` (the CLI does this for every command). The
phonebook writer asks ``recorder()`` for the active run and hands it each phonebook's changes;
the run's row is created with its first change, so a run that changes nothing writes nothing.
When the command ends, the run gets its outcome and history older than ``history_days`` goes.
Undo lives in ``undo.py``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, func, select, update
from sqlalchemy.orm import Session

from . import logs
from .contact import compact_json
from .db import insert_many
from .model import Change, Entry, KeyValue, Number, Phonebook, Run, User, table_of, utcnow

log = logs.get("history")

NAMESPACE = "contactsync"
DEFAULT_DAYS = 30
CHUNK = 500
CHANGES = table_of(Change)
# The entry as `phonebook show --json` prints it; snapshots also keep what undo needs to
# restore an entry exactly (categories, origin, change key, content hash).
ENTRY_KEYS = ("display_name", "given_name", "surname", "company", "department", "job_title",
              "emails", "numbers", "source_id")
_COLUMNS = ("display_name", "given_name", "surname", "company", "department", "job_title",
            "emails", "categories", "origin", "source_id", "change_key", "content_hash")

Snapshot = dict[str, Any]


def snapshot(values: dict[str, Any], numbers: Iterable[dict[str, Any]]) -> Snapshot:
    """An entry as history keeps it, from column values and number rows (in position order)."""
    snap = {k: values.get(k) for k in _COLUMNS}
    snap["emails"] = list(snap["emails"] or [])
    snap["categories"] = list(snap["categories"] or [])
    snap["numbers"] = [{"type": n["type"], "number": n["number"], "e164": n["e164"]}
                       for n in numbers]
    return snap


def public(snap: Snapshot | None) -> dict[str, Any] | None:
    """The ENTRY shape of ``phonebook show --json``."""
    return None if snap is None else {k: snap.get(k) for k in ENTRY_KEYS}


def dumps(snap: Snapshot | None) -> str | None:
    return None if snap is None else compact_json(snap)


def loads(text: str | None) -> Snapshot | None:
    return None if text is None else json.loads(text)


def load_snapshots(session: Session, ids: Sequence[int]) -> dict[int, Snapshot]:
    """The entries with these ids as they are now (missing ids: gone)."""
    cols = [getattr(Entry, c) for c in _COLUMNS]
    out: dict[int, Snapshot] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = list(ids[i:i + CHUNK])
        numbers: dict[int, list[dict[str, Any]]] = {}
        rows = session.execute(select(Number.entry_id, Number.type, Number.number, Number.e164)
                               .where(Number.entry_id.in_(chunk))
                               .order_by(Number.entry_id, Number.position, Number.id))
        for r in rows:
            numbers.setdefault(r.entry_id, []).append(r._asdict())
        for r in session.execute(select(Entry.id, *cols).where(Entry.id.in_(chunk))):
            out[r.id] = snapshot(r._asdict(), numbers.get(r.id, []))
    return out


Change4 = tuple[str, int, Snapshot | None, Snapshot | None]  # action, entry id, before, after


def changes_of(removed: Iterable[Any], before: dict[int, Snapshot],
               written: Iterable[tuple[int, dict[str, Any], list[dict[str, Any]]]],
               origin: str | None) -> list[Change4]:
    """What the phonebook writer did: ``removed`` entries (with ``.id``), and the ``written``
    (entry id, column values, number rows); an id in ``before`` was updated, else added."""
    out: list[Change4] = [("removed", e.id, before.get(e.id), None) for e in removed]
    origin = None if origin is None else str(origin)
    for entry_id, v, nums in written:
        # What the run wrote, without change key and content hash: an "after" is shown and
        # compared with the entry as it is now (same(), in undo), never restored; leaving
        # those out keeps a first sync's history small (measured: benchmarks/history_cost.py).
        after = {"display_name": v["display_name"], "given_name": v["given_name"],
                 "surname": v["surname"], "company": v["company"],
                 "department": v["department"], "job_title": v["job_title"],
                 "emails": v["emails"], "categories": v["categories"], "origin": origin,
                 "source_id": v["source_id"],
                 "numbers": [{"type": n["type"], "number": n["number"], "e164": n["e164"]}
                             for n in nums]}
        old = before.get(entry_id)
        out.append(("updated" if old is not None else "added", entry_id, old, after))
    return out


def same(current: Snapshot | None, recorded: Snapshot | None) -> bool:
    """The entry is as a run left it: every value the run recorded is still there."""
    if current is None or recorded is None:
        return current is recorded
    return all(current.get(k) == v for k, v in recorded.items())


# -- recording ----------------------------------------------------------------------------------

@dataclass
class Recorder:
    """The active run: metadata, and its row id once a first change was written."""

    command: str
    api: str | None = None
    outcome: str = ""
    started: datetime = field(default_factory=utcnow)
    run_id: int | None = None
    engine: Engine | Connection | None = None  # the bind of the session that made the row
    days: int | None = None  # history_days, read with the first change
    _committed: bool = False  # the transaction that made the run's row committed

    def note(self, *, api: str | None = None, outcome: str | None = None) -> None:
        if api is not None:
            self.api = api
        if outcome is not None:
            self.outcome = outcome

    def enabled(self, session: Session) -> bool:
        if self.days is None:
            self.days = history_days(session)
        return self.days > 0

    def _run_row(self, session: Session) -> int:
        # The row may have gone with a rolled-back transaction (a user's write failed); once
        # the transaction that made it committed, it stays.
        if self.run_id is not None and (
                self._committed or session.get(Run, self.run_id) is not None):
            return self.run_id
        run = Run(started_at=self.started, command=self.command, api=self.api,
                  outcome="incomplete")
        session.add(run)
        session.flush()
        self.run_id = run.id
        self.engine = session.get_bind()
        self._committed = False

        def committed(_session: Session) -> None:
            self._committed = True

        event.listen(session, "after_commit", committed, once=True)
        return self.run_id

    def add(self, session: Session, book: Phonebook, changes: Sequence[Change4]) -> None:
        """Record (action, entry id, before, after) of one phonebook, in the caller's
        transaction."""
        if not changes or not self.enabled(session):
            return
        run_id = self._run_row(session)
        user = session.get(User, book.owner_id) if book.owner_id is not None else None
        owner = user.email if user is not None else None
        rows = [{"run_id": run_id, "phonebook_id": book.id, "owner": owner,
                 "phonebook": book.title, "action": action, "entry_id": entry_id,
                 "before": dumps(before), "after": dumps(after)}
                for action, entry_id, before, after in changes]
        for i in range(0, len(rows), CHUNK):
            insert_many(session, CHANGES, rows[i:i + CHUNK])

    def finish(self, outcome: str) -> None:
        """The run's outcome; history older than history_days goes. Never fails the command."""
        if self.run_id is None or self.engine is None:
            return
        try:
            with Session(self.engine) as s, s.begin():
                s.execute(update(Run).where(Run.id == self.run_id)
                          .values(outcome=(self.outcome or outcome)[:510],
                                  finished_at=utcnow(), api=self.api))
                prune(s, self.days or DEFAULT_DAYS)
        except Exception as exc:  # noqa: BLE001 - the changes and their history are committed
            # One line (the database may just have gone away); the traceback only with -vv.
            log.warning("warning: could not store the outcome of run %s: %s", self.run_id,
                        (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
            log.debug("storing the outcome of run %s failed", self.run_id, exc_info=True)


_ACTIVE: ContextVar[Recorder | None] = ContextVar("contactsync_history", default=None)


def recorder() -> Recorder | None:
    """The run being recorded, if any."""
    return _ACTIVE.get()


def note(*, api: str | None = None, outcome: str | None = None) -> None:
    rec = _ACTIVE.get()
    if rec is not None:
        rec.note(api=api, outcome=outcome)


@contextmanager
def recording(command: str) -> Iterator[Recorder]:
    """Record what the code inside writes as one run named ``command``."""
    rec = Recorder(command[:255])
    token = _ACTIVE.set(rec)
    outcome = "failed"
    try:
        yield rec
        outcome = "ok"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    except Exception as exc:
        outcome = f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        raise
    finally:
        _ACTIVE.reset(token)
        rec.finish(outcome)


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, without the global options (--db may carry a password)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--db":
            skip = True
            continue
        if arg.startswith("--db=") or arg in ("-q", "--quiet", "--verbose") or (
                arg.startswith("-v") and set(arg[1:]) == {"v"}):
            continue
        out.append(arg)
    return shlex.join(out) if out else "sync"


def history_days(session: Session) -> int:
    text = session.scalar(select(KeyValue.value).where(KeyValue.namespace == NAMESPACE,
                                                       KeyValue.key == "history_days"))
    return int(text) if text and text.isdigit() else DEFAULT_DAYS


def prune(session: Session, days: int) -> int:
    """Drop the runs started more than ``days`` days ago, with their changes."""
    cutoff = utcnow() - timedelta(days=max(days, 0))
    old = [r for r, in session.execute(select(Run.id).where(Run.started_at < cutoff))]
    for i in range(0, len(old), CHUNK):
        chunk = old[i:i + CHUNK]
        session.execute(delete(Change).where(Change.run_id.in_(chunk)))
        session.execute(delete(Run).where(Run.id.in_(chunk)))
    return len(old)


# -- reading ------------------------------------------------------------------------------------

def iso(when: datetime) -> str:
    return when.replace(tzinfo=UTC).isoformat(timespec="seconds")


def parse_since(text: str) -> datetime:
    """A date or date-time; without a zone it is local time. Returned as naive UTC."""
    when = datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.astimezone()
    return when.astimezone(UTC).replace(tzinfo=None)


def runs(session: Session, *, owner: str | None = None, title: str | None = None,
         since: datetime | None = None) -> list[dict[str, Any]]:
    """The runs with their per-phonebook counts, newest first (the `history --json` shape)."""
    q = (select(Change.run_id, Change.owner, Change.phonebook, Change.action, func.count())
         .group_by(Change.run_id, Change.owner, Change.phonebook, Change.action))
    if owner is not None:
        q = q.where(func.lower(Change.owner) == owner.lower())
    if title is not None:
        q = q.where(Change.phonebook == title)
    if since is not None:
        q = q.join(Run, Run.id == Change.run_id).where(Run.started_at >= since)
    books: dict[int, dict[tuple[str | None, str], dict[str, Any]]] = {}
    for run_id, who, name, action, n in session.execute(q):
        book = books.setdefault(run_id, {}).setdefault(
            (who, name), {"owner": who, "name": name, "added": 0, "updated": 0, "removed": 0})
        book[action] = n
    if not books:
        return []
    rows = session.scalars(select(Run).where(Run.id.in_(list(books)))
                           .order_by(Run.started_at.desc(), Run.id.desc()))
    return [run_json(r, sorted(books[r.id].values(),
                               key=lambda b: ((b["owner"] or "").lower(), b["name"])))
            for r in rows]


def run_json(run: Run, phonebooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"run": run.id, "started": iso(run.started_at), "command": run.command,
            "api": run.api, "outcome": run.outcome, "phonebooks": phonebooks}


def changes(session: Session, run_id: int, owner: str | None = None) -> list[Change]:
    q = select(Change).where(Change.run_id == run_id).order_by(Change.id)
    if owner is not None:
        q = q.where(func.lower(Change.owner) == owner.lower())
    return list(session.scalars(q))


def show(session: Session, run_id: int) -> dict[str, Any] | None:
    """One run with every change (the `history show --json` shape); None if unknown."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    found = changes(session, run_id)
    counts: dict[tuple[str | None, str], dict[str, Any]] = {}
    for c in found:
        book = counts.setdefault((c.owner, c.phonebook), {"owner": c.owner, "name": c.phonebook,
                                                          "added": 0, "updated": 0, "removed": 0})
        book[c.action] += 1
    out = run_json(run, list(counts.values()))
    out["changes"] = [{"owner": c.owner, "phonebook": c.phonebook, "action": c.action,
                       "before": public(loads(c.before)), "after": public(loads(c.after))}
                      for c in found]
    return out
