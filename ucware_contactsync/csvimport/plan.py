"""Packed rows and the per-phonebook diff and write of the file imports.

A file import is all-or-nothing, so every row of the file is held until the one commit; these
keep that small: a row is one ``marshal`` blob, and contacts exist only one at a time while
diffing and one batch at a time while writing.
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from .. import phonebook as pb
from ..contact import Contact, PhoneNumber
from ..model import Phonebook


class Record:
    """One data row, turned into what the writer needs, packed: a big file holds ~140,000
    of them at once (all-or-nothing), so the contact is kept as one ``marshal`` blob
    (~0.3 KB instead of ~1.2 KB as objects) and unpacked only while it is diffed or written."""

    __slots__ = ("line", "owner", "title", "source_id", "_packed")

    def __init__(self, line: int, owner: str, title: str, contact: Contact) -> None:
        self.line, self.owner, self.title = line, owner, title
        self.source_id = contact.source_id
        self._packed = pack(contact)

    @property
    def contact(self) -> Contact:
        return unpack(self._packed, self.source_id)


def pack(c: Contact) -> bytes:
    return marshal.dumps((c.display_name, c.given_name, c.surname, c.company, c.department,
                          c.job_title, c.emails, tuple((n.type, n.number) for n in c.numbers),
                          c.categories, c.change_key))


def unpack(packed: bytes, source_id: str | None) -> Contact:
    (display, given, surname, company, department, job, emails, numbers, categories,
     change_key) = marshal.loads(packed)
    return Contact(display, given, surname, company, department, job, emails,
                   tuple(PhoneNumber(t, n) for t, n in numbers), categories, source_id,
                   change_key)


@dataclass
class Plan:
    """A phonebook's diff with packed records instead of contacts (see ``Record``)."""

    adds: list[Record] = field(default_factory=list)
    updates: list[tuple[pb.ExistingEntry, Record]] = field(default_factory=list)
    removes: list[pb.ExistingEntry] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.adds or self.updates or self.removes)

    def counts(self) -> pb.DiffCounts:
        return pb.DiffCounts(len(self.adds), len(self.updates), len(self.removes),
                             self.unchanged)

    def lines(self) -> list[str]:
        out = [f"+ {r.contact.name}" for r in self.adds]
        out += [f"~ {r.contact.name}" for _, r in self.updates]
        return out + [f"- {e.display_name}" for e in self.removes]


def plan_book(existing: dict[str, pb.ExistingEntry], records: list[Record]) -> Plan:
    """``phonebook.diff_full`` (with its relinking of an identical contact under a new id)
    over packed records: one contact is unpacked at a time, for its content hash. Empties
    ``existing`` (what is left of it is removed; no second set of 140,000 keys)."""
    plan = Plan()
    for r in records:  # source ids are unique per phonebook (assign_keys)
        assert r.source_id is not None
        old = existing.pop(r.source_id, None)
        if old is None:
            plan.adds.append(r)
        elif old.content_hash != r.contact.content_hash():
            plan.updates.append((old, r))
        else:
            plan.unchanged += 1
    plan.removes = list(existing.values())
    plan.adds, plan.removes = pb.relink(plan.adds, plan.removes, plan.updates,
                                        lambda r: r.contact.content_hash())
    return plan


WRITE_BATCH = 2000  # contacts unpacked and written at a time


def write_plan(s: Session, book: Phonebook, plan: Plan, origin: str, region: str,
           area_code: str) -> None:
    """``phonebook.apply`` in batches (same order: removes, updates, adds; history recorded
    per batch), so the contacts of only one batch exist at a time."""
    pb.apply(s, book, pb.Diff(removes=plan.removes), origin, region, area_code)
    for i in range(0, len(plan.updates), WRITE_BATCH):
        ups = [(old, r.contact) for old, r in plan.updates[i:i + WRITE_BATCH]]
        pb.apply(s, book, pb.Diff(updates=ups), origin, region, area_code)
    for i in range(0, len(plan.adds), WRITE_BATCH):
        adds = [r.contact for r in plan.adds[i:i + WRITE_BATCH]]
        pb.apply(s, book, pb.Diff(adds=adds), origin, region, area_code)
