"""The CSV import as a library function: validate the whole file, diff, apply in ONE transaction.

Order of work, so that a bad file never writes anything:

1. decode, sniff, recognise the header (a failure here stops at once);
2. turn every row into a ``Contact`` with owner, phonebook title and a stable key, collecting
   every problem with its physical line number;
3. in the session: resolve owners, check the target phonebooks; more problems;
4. any problem -> ``CsvImportError`` listing them, nothing written;
5. else per (owner, phonebook) ``phonebook.diff_full`` + ``phonebook.apply``, one commit.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import phonebook as pb
from .. import settings_store
from ..contact import Contact, PhoneNumber
from ..db import Database
from ..directory import selected_users
from ..errors import UsageError
from ..model import ID_LEN, User
from ..ownership import Origin, may_write, origin_of
from . import formats as fm
from .reader import ACCEPTED_ENCODINGS, ReadError, decode, delimiter_name, rows, sniff_delimiter

ORIGIN = Origin.CSV.value
MAX_LISTED = 20  # problems listed before "and N more"


@dataclass(order=True)
class Problem:
    line: int
    message: str


class CsvImportError(UsageError):
    """The file cannot be imported; first line says what to do, then one line per problem."""

    def __init__(self, path: str, problems: list[Problem], hint: str = "") -> None:
        problems = sorted(problems)
        n = len(problems)
        what = "1 problem" if n == 1 else f"{n} problems"
        super().__init__(f"{path}: {what}, nothing was imported",
                         hint or "fix the lines listed below and run the import again")
        self.path = path
        self.problems = problems

    def details(self) -> list[str]:
        shown = [f"  line {p.line}: {p.message}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            shown.append(f"  and {len(self.problems) - MAX_LISTED} more")
        return shown

    def __str__(self) -> str:
        return "\n".join([super().__str__(), *self.details()])


@dataclass
class Record:
    """One data row, turned into what the writer needs."""

    line: int
    owner: str  # as written
    title: str
    contact: Contact  # source_id filled in once keys are assigned


@dataclass
class BookResult:
    owner: str
    title: str
    diff: pb.Diff
    created: bool

    def summary(self) -> str:
        new = " (new phonebook)" if self.created else ""
        return f"{self.owner} / {self.title}: {self.diff.summary()}{new}"


@dataclass
class ImportResult:
    path: str
    format: str
    encoding: str
    delimiter: str
    rows: int
    dry_run: bool
    books: list[BookResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # parse / diff / write seconds


# --- rows -> contacts --------------------------------------------------------------------------

_BLANKS = re.compile(r"\s+")


def _key_text(text: str) -> str:
    """Normalised text for content keys: NFKC, case-folded, blanks collapsed."""
    return _BLANKS.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def content_key(contact: Contact) -> str:
    """The documented row key without an id column: display name + company.

    A changed number, e-mail, department or job title is then an update of the same entry;
    renaming a contact or changing the company is a remove plus an add. Rows with neither
    name nor company are keyed by their first number's digits.
    """
    name, company = _key_text(contact.name), _key_text(contact.company)
    if name or company:
        return f"csv:key:{name}|{company}"
    digits = re.sub(r"\D", "", contact.numbers[0].number) if contact.numbers else ""
    return f"csv:num:{digits or _key_text(contact.numbers[0].number)}"


def _fit_id(key: str) -> str:
    """Keys longer than the column get a hash tail, staying unique and stable."""
    if len(key) <= ID_LEN:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key[: ID_LEN - 65] + "#" + digest


SECOND = fm.SECOND_TYPE


def _place(numbers: list[PhoneNumber]) -> list[PhoneNumber]:
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
        if not display and not self.own:
            # Foreign formats have no display name: build it like Outlook's "First Middle Last".
            parts = (f.get("given_name"), f.get("middle"), f.get("surname"), f.get("suffix"))
            display = " ".join(p for p in parts if p) or f.get("file_as", "")
        contact = Contact(
            display_name=display,
            given_name=f.get("given_name", ""),
            surname=f.get("surname", ""),
            company=f.get("company", ""),
            department=f.get("department", ""),
            job_title=f.get("job_title", ""),
            emails=tuple(dict.fromkeys(emails)),
            numbers=tuple(_place(numbers)) if len(numbers) > 1 else tuple(numbers),
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


# --- the import --------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"file {path} does not exist", "give the path of a CSV file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def parse(path: str | Path, user: str | None = None, phonebook: str | None = None
          ) -> tuple[list[Record], ImportResult, list[Problem]]:
    """Read and check the file without a database; records get their keys here."""
    path = Path(path)
    shown = str(path)
    data = _read(path)
    try:
        text, encoding = decode(data)
    except ReadError as exc:
        raise CsvImportError(shown, [Problem(exc.line, exc.message)],
                             f"save it as CSV in {ACCEPTED_ENCODINGS} and run again") from None
    if not text.strip():
        raise UsageError(f"{shown} is empty", "export the contacts again")
    delimiter = sniff_delimiter(text)
    it = rows(text, delimiter)
    try:
        header = next(it)
    except ReadError as exc:
        raise CsvImportError(shown, [Problem(exc.line, exc.message)]) from None
    layout = fm.detect(header.cells)
    if layout is None:
        cols = ", ".join(repr(c.strip()) for c in header.cells[:6] if c.strip())
        more = ", ..." if len(header.cells) > 6 else ""
        raise UsageError(f"{shown} line 1: the header row ({cols}{more}) matches no known CSV "
                         "format", fm.expected_formats())
    if layout.unknown or layout.duplicates:
        probs = [Problem(1, f"unknown column {c!r}") for c in layout.unknown]
        probs += [Problem(1, f"column {c!r} appears twice") for c in layout.duplicates]
        raise CsvImportError(shown, probs, "use only the columns of docs/csv-format.md: "
                             f"{', '.join(fm.OWN_COLUMNS)} and the number types "
                             f"{', '.join(fm.NUMBER_TYPES)}")
    has_owner = layout.has(fm.OWNER)
    has_book = layout.has(fm.BOOK)
    if not has_owner and not user:
        raise UsageError(f"{shown} has no 'owner' column, so it does not say whose phonebook "
                         "to fill", "add --user EMAIL")
    if not has_book and not phonebook:
        raise UsageError(f"{shown} has no 'phonebook' column, so it does not say which "
                         "phonebook to fill", "add --phonebook NAME (e.g. --phonebook Kunden)")
    result = ImportResult(shown, layout.format.title, encoding, delimiter_name(delimiter), 0,
                          False)
    mapper = RowMapper(layout)
    width = len(header.cells)
    records: list[Record] = []
    ids: list[str] = []
    problems: list[Problem] = []
    try:
        for row in it:
            cells = row.cells
            if not any(c.strip() for c in cells):
                continue  # blank lines and Excel's trailing ";;;;" rows
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                problems.append(Problem(row.line, f"{len(cells)} cells but the header has "
                                        f"{width} (unquoted delimiter or unbalanced quotes?)"))
                continue
            owner, title, row_id, contact, row_problems = mapper.map(cells)
            problems.extend(Problem(row.line, p) for p in row_problems)
            owner = owner or (user or "")
            title = title or (phonebook or "")
            if not owner:
                problems.append(Problem(row.line, "no owner: the 'owner' cell is empty "
                                        "(fill it or give --user EMAIL)"))
            elif "@" not in owner:
                problems.append(Problem(row.line, f"owner {owner!r} is not an e-mail address"))
            if not title:
                problems.append(Problem(row.line, "no phonebook: the 'phonebook' cell is empty "
                                        "(fill it or give --phonebook NAME)"))
            elif len(title) > 255:
                problems.append(Problem(row.line, "phonebook title longer than 255 characters"))
            if not contact.name and not contact.numbers:
                problems.append(Problem(row.line, "neither a name nor a phone number"))
                continue
            records.append(Record(row.line, owner, title, contact))
            ids.append(row_id)
    except ReadError as exc:
        problems.append(Problem(exc.line, exc.message))
    records, more = _assign_keys(records, ids)
    result.rows = len(records)
    return records, result, problems + more


def _assign_keys(records: list[Record], ids: list[str]) -> tuple[list[Record], list[Problem]]:
    """source_id per record: ``csv:id:<id>`` or the content key, unique per phonebook."""
    problems: list[Problem] = []
    kept: list[Record] = []
    seen: dict[tuple[str, str, str], int] = {}  # (owner, title, key) -> first line
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for rec, row_id in zip(records, ids, strict=True):
        book = (rec.owner.casefold(), rec.title)
        if row_id:
            key = f"csv:id:{row_id}"
            first = seen.get((*book, key))
            if first is not None:
                problems.append(Problem(rec.line, f"id {row_id!r} appears twice in "
                                        f"{rec.owner} / {rec.title} (first in line {first})"))
                continue
            seen[(*book, key)] = rec.line
        else:
            # Duplicates (two "Max Müller" without company) are told apart by their order.
            base = content_key(rec.contact)
            counts[(*book, base)] += 1
            n = counts[(*book, base)]
            key = base if n == 1 else f"{base}#{n}"
        rec.contact = _with_id(rec.contact, _fit_id(key))
        kept.append(rec)
    return kept, problems


def _with_id(c: Contact, source_id: str) -> Contact:
    return Contact(c.display_name, c.given_name, c.surname, c.company, c.department,
                   c.job_title, c.emails, c.numbers, c.categories, source_id)


def import_csv(database: Database, path: str | Path, user: str | None = None,
               phonebook: str | None = None, dry_run: bool = False,
               region: str | None = None) -> ImportResult:
    """Import one CSV file; raises ``UsageError``/``CsvImportError`` and writes nothing on
    any problem. ``region`` defaults to the key ``default_region``."""
    t0 = time.perf_counter()
    records, result, problems = parse(path, user, phonebook)
    result.dry_run = dry_run
    result.timings["parse"] = time.perf_counter() - t0
    with database.session() as s:
        conf = settings_store.load(s)
        region = region or conf.default_region
        groups, more = _resolve(s, records, conf.phonebookname)
        problems += more
        if problems:
            raise CsvImportError(result.path, problems)
        t1 = time.perf_counter()
        plans = []
        for (owner, title), contacts in groups.items():
            book = pb.get_phonebook(s, owner, title)
            existing = pb.existing_entries(s, book.id, ORIGIN) if book is not None else {}
            diff = pb.diff_full(existing, contacts)
            plans.append((owner, title, book, diff))
            result.books.append(BookResult(owner.email or "", title, diff, book is None))
        t2 = time.perf_counter()
        result.timings["diff"] = t2 - t1
        if not dry_run:
            for owner, title, book, diff in plans:
                if book is None:
                    book = pb.ensure_phonebook(s, owner, title, source=ORIGIN)
                pb.apply(s, book, diff, ORIGIN, region, conf.area_code)
        else:
            s.rollback()
    result.timings["write"] = time.perf_counter() - t2  # the commit is part of the write
    return result


def _resolve(s: Session, records: list[Record], sync_title: str
             ) -> tuple[dict[tuple[User, str], list[Contact]], list[Problem]]:
    """Owners by e-mail (case-insensitive) and the phonebooks a CSV import may fill."""
    problems: list[Problem] = []
    wanted = {r.owner.strip().lower() for r in records}
    users: dict[str, User] = {}
    for chunk in _chunks(sorted(wanted), 500):
        for u in s.scalars(select(User).where(User.email_key.in_(chunk))):
            users[u.email_key or ""] = u
    synced = {u.id for u in selected_users(s)}
    lines: dict[str, list[int]] = defaultdict(list)  # unknown owner (lower) -> its lines
    written: dict[str, str] = {}
    groups: dict[tuple[User, str], list[Contact]] = defaultdict(list)
    for r in records:
        u = users.get(r.owner.strip().lower())
        if u is None:
            lines[r.owner.strip().lower()].append(r.line)
            written.setdefault(r.owner.strip().lower(), r.owner.strip())
            continue
        groups[(u, r.title)].append(r.contact)
    for low, where in lines.items():
        owner = written[low]
        also = f" (and {len(where) - 1} more lines)" if len(where) > 1 else ""
        problems.append(Problem(where[0], f"no user with e-mail {owner}{also}; add it with "
                                f"'ucware-contactsync users add {owner}'"))
    first_line = {(users[r.owner.strip().lower()].id, r.title): r.line
                  for r in reversed(records) if r.owner.strip().lower() in users}
    for (u, title) in groups:
        book = pb.get_phonebook(s, u, title)
        # The title the mailbox sync keeps for its users is its own, even before its first run.
        reserved = Origin.MAILBOX if title == sync_title and u.id in synced else None
        if may_write(book.source if book else None, Origin.CSV, reserved) is None:
            owner = origin_of(book.source) if book else reserved
            keeper = owner.label if owner else "not for CSV"
            problems.append(Problem(first_line[(u.id, title)],
                                    f"{u.email} / {title} is {keeper}; a CSV file cannot fill "
                                    "it (use --phonebook OTHER or another title in the "
                                    "'phonebook' column)"))
    return dict(groups), problems


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
