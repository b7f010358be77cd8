"""One CSV row -> (owner, phonebook title, id, Contact) for a recognised layout."""

from __future__ import annotations

import re
from collections import Counter

from ..contact import Contact, PhoneNumber
from . import formats as fm

SECOND = fm.SECOND_TYPE


def place_numbers(numbers: list[PhoneNumber]) -> list[PhoneNumber]:
    """A second business/home number moves to business2/home2 while that type is free."""
    used: set[str] = set()
    out = []
    for n in numbers:
        kind = n.type
        if kind in used and SECOND.get(kind) and SECOND[kind] not in used:
            kind = SECOND[kind]
            n = PhoneNumber(kind, n.number)
        used.add(kind)
        out.append(n)
    return out


class RowMapper:
    """Turns the cells of one row into (owner, title, id, Contact) for a recognised layout."""

    def __init__(self, layout: fm.Layout) -> None:
        self.layout = layout
        self.targets = layout.targets
        self.width = len(layout.header)
        self.google = layout.format.google_pairs
        self.own = layout.format is fm.OWN

    def map(self, cells: list[str]) -> tuple[str, str, str, Contact, list[str]]:
        """(owner, title, id, contact, problems); cells beyond the header are checked first."""
        problems: list[str] = []
        f: dict[str, str] = {}
        emails: list[str] = []
        cats: list[str] = []
        numbers: list[PhoneNumber] = []
        labels: dict[str, str] = {}
        gvalues: list[tuple[str, str]] = []
        owner = title = row_id = ""
        n_cells = len(cells)
        for i, (kind, arg) in self.targets:
            if i >= n_cells:
                continue
            value = cells[i].strip()
            if not value:
                continue
            if "\n" in value or "\r" in value:
                # Only notes may span lines; a break elsewhere means a quote went astray.
                # repr: a header cell may hold a line break itself; one problem, one line.
                problems.append(f"line break inside column {self.layout.header[i].strip()!r} "
                                "(unbalanced quotes?)")
                continue
            if kind == fm.FIELD:
                f[arg] = value
            elif kind == fm.NUMBER:
                numbers.extend(PhoneNumber(arg, v) for v in _numbers(value))
            elif kind == fm.EMAIL:
                emails.extend(v for v in fm.split_multi(value) if "@" in v)
            elif kind == fm.CATEGORY:
                cats.extend(_category(v) for v in fm.split_multi(value))
            elif kind == fm.OWNER:
                owner = value
            elif kind == fm.BOOK:
                title = value
            elif kind == fm.ID:
                row_id = value
            elif kind == fm.PHONE_LABEL:
                labels[arg] = value
            elif kind == fm.PHONE_VALUE:
                gvalues.append((arg, value))
        for n, value in gvalues:
            kind = fm.google_type(labels.get(n, ""))
            numbers.extend(PhoneNumber(kind, v) for v in _numbers(value))
        display = f.get("display_name", "")
        if not self.own:
            # Built like Outlook's "First Middle Last" when missing; a person's name also wins
            # over a display name that is only the company (exporters put it there).
            parts = (f.get("given_name"), f.get("middle"), f.get("surname"), f.get("suffix"))
            person = " ".join(p for p in parts if p)
            company = f.get("company", "")
            if not display or (person and display.casefold() == company.casefold()):
                display = person or display or f.get("file_as", "")
        contact = Contact(
            display_name=display,
            given_name=f.get("given_name", ""),
            surname=f.get("surname", ""),
            company=f.get("company", ""),
            department=f.get("department", ""),
            job_title=f.get("job_title", ""),
            emails=tuple(dict.fromkeys(emails)),
            numbers=tuple(place_numbers(numbers)) if len(numbers) > 1 else tuple(numbers),
            categories=tuple(c for c in dict.fromkeys(cats) if c),
        )
        return owner, title, row_id, contact, problems


def _numbers(cell: str) -> list[str]:
    # Several numbers in one cell only with Google's " ::: " (";" may be part of a number).
    return [p.strip() for p in cell.split(fm.MULTI_SEPARATOR) if p.strip()]


def _category(label: str) -> str:
    # Google system groups: "* myContacts" is every contact, "* starred" is kept as "starred".
    label = label.strip()
    if label.startswith("* "):
        label = label[2:].strip()
        return "" if label.casefold() == "mycontacts" else label
    return label


_NUMBERISH = re.compile(r"^\+?[\d\s()/.\-\u2013]+$")
_DATE = re.compile(r"^\d{1,4}([-./])\d{1,2}\1\d{1,4}$")


def looks_like_number(cell: str) -> bool:
    """A phone number as written (6-20 digits and separators), not a date or a postcode."""
    digits = sum(c.isdigit() for c in cell)
    return 6 <= digits <= 20 and bool(_NUMBERISH.match(cell)) and not _DATE.match(cell)


class UnmappedNumbers:
    """Per column the layout does not import: do its values look like phone numbers?"""

    def __init__(self, layout: fm.Layout) -> None:
        self.layout = layout
        self.filled: Counter[int] = Counter()
        self.numeric: Counter[int] = Counter()

    def see(self, cells: list[str]) -> None:
        for i in self.layout.unmapped:
            value = cells[i].strip() if i < len(cells) else ""
            if value:
                self.filled[i] += 1
                self.numeric[i] += looks_like_number(value)

    def columns(self) -> list[str]:
        """Columns where at least half of the filled cells look like phone numbers."""
        return [self.layout.header[i].strip() for i in self.layout.unmapped
                if self.numeric[i] and 2 * self.numeric[i] >= self.filled[i]]
