"""The CSV import as a library function: validate the whole file, diff, apply in ONE transaction.

Order of work, so that a bad file never writes anything:

1. decode, sniff, recognise the header (a failure here stops at once);
2. turn every row into a ``Contact`` with owner, phonebook title and a stable key, collecting
   every problem with its physical line number;
3. in the session: resolve owners, check the target phonebooks; more problems;
4. any problem -> ``CsvImportError`` listing them, nothing written;
5. else per (owner, phonebook) the diff (``plan.plan_book``, as ``phonebook.diff_full``) and
   ``phonebook.apply`` in batches (``plan.write_plan``), one commit for all.

Rows are held packed (``plan.Record``) until the commit: a file at the size limit stays small.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import phonebook as pb
from .. import settings_store
from ..contact import NUMBER_TYPES, Contact
from ..db import Database
from ..directory import selected_users
from ..errors import UsageError
from ..model import ID_LEN, User
from ..ownership import Origin, may_write, origin_of
from . import formats as fm
from .mapping import RowMapper, UnmappedNumbers
from .plan import Record, plan_book, write_plan
from .reader import ACCEPTED_ENCODINGS, ReadError, check_file, delimiter_name, open_csv

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
class BookResult:
    owner: str
    title: str
    counts: pb.DiffCounts
    created: bool
    lines: list[str] = field(default_factory=list)  # "+ name" etc., filled for --dry-run

    def summary(self) -> str:
        new = " (new phonebook)" if self.created else ""
        return f"{self.owner} / {self.title}: {self.counts.summary()}{new}"


@dataclass
class ImportResult:
    path: str
    format: str
    encoding: str
    delimiter: str
    rows: int
    dry_run: bool
    books: list[BookResult] = field(default_factory=list)
    # Columns not imported whose values look like phone numbers (named in the summary).
    unmapped_numbers: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # parse / diff / write seconds


# --- rows -> contacts --------------------------------------------------------------------------

_BLANKS = re.compile(r"\s+")


def _key_text(text: str) -> str:
    """Normalised text for content keys: NFKC, case-folded, blanks collapsed."""
    return _BLANKS.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def content_key(contact: Contact, prefix: str = "csv") -> str:
    """The documented row key without an id column: display name + company.

    A changed number, e-mail, department or job title is then an update of the same entry;
    renaming a contact or changing the company is a remove plus an add. Rows with neither
    name nor company are keyed by their first number's digits.
    """
    name, company = _key_text(contact.name), _key_text(contact.company)
    if name or company:
        return f"{prefix}:key:{name}|{company}"
    digits = re.sub(r"\D", "", contact.numbers[0].number) if contact.numbers else ""
    return f"{prefix}:num:{digits or _key_text(contact.numbers[0].number)}"


def _fit_id(key: str) -> str:
    """Keys longer than the column get a hash tail, staying unique and stable."""
    if len(key) <= ID_LEN:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key[: ID_LEN - 65] + "#" + digest


# --- the import --------------------------------------------------------------------------------


def read_file(path: Path, what: str = "CSV") -> bytes:
    check_file(path, what)  # a regular file within the size limit
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def parse(path: str | Path, user: str | None = None, phonebook: str | None = None,
          strict: bool = False) -> tuple[list[Record], ImportResult, list[Problem]]:
    """Read and check the file without a database; records get their keys here. ``strict``:
    a column that holds phone numbers but is not imported is a problem."""
    path = Path(path)
    shown = str(path)
    try:
        csv_file = open_csv(path)  # checks the encoding of the whole file, in pieces
    except ReadError as exc:
        raise CsvImportError(shown, [Problem(exc.line, exc.message)],
                             f"save it as CSV in {ACCEPTED_ENCODINGS} and run again") from None
    if csv_file.blank:
        raise UsageError(f"{shown} is empty", "export the contacts again")
    encoding, delimiter = csv_file.encoding, csv_file.delimiter
    it = csv_file.rows()
    try:
        header = next(it)
    except ReadError as exc:
        raise CsvImportError(shown, [Problem(exc.line, exc.message)]) from None
    layout = fm.detect(header.cells)
    if layout is None:
        cols = ", ".join(repr(c.strip()) for c in header.cells[:6] if c.strip())
        cut = ", ..." if len(header.cells) > 6 else ""
        raise UsageError(f"{shown} line 1: the header row ({cols}{cut}) matches no known CSV "
                         "format", fm.expected_formats())
    if layout.unknown or layout.duplicates:
        probs = [Problem(1, f"unknown column {c!r}") for c in layout.unknown]
        probs += [Problem(1, f"column {c!r} appears twice") for c in layout.duplicates]
        raise CsvImportError(shown, probs, "use only the columns of docs/csv-format.md: "
                             f"{', '.join(fm.OWN_COLUMNS)} and the number types "
                             f"{', '.join(NUMBER_TYPES)}")
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
    unmapped = UnmappedNumbers(layout)
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
            unmapped.see(cells)
            owner, title, row_id, contact, row_problems = mapper.map(cells)
            problems.extend(Problem(row.line, p) for p in row_problems)
            owner = owner or (user or "")
            title = pb.clean_title(title or (phonebook or ""))  # no terminal escapes
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
            # Interned: the same owner and title repeat on every row (memory of big files).
            records.append(Record(row.line, sys.intern(owner), sys.intern(title), contact))
            ids.append(row_id)
    except ReadError as exc:
        problems.append(Problem(exc.line, exc.message))
    records, more = assign_keys(records, ids)
    result.rows = len(records)
    result.unmapped_numbers = unmapped.columns()
    if strict:
        more += [Problem(1, f"column {c!r} holds phone numbers but no recognised format "
                         "imports it (rename it, see docs/csv-format.md)")
                 for c in result.unmapped_numbers]
    return records, result, problems + more


def assign_keys(records: list[Record], ids: list[str], prefix: str = "csv", what: str = "id"
                ) -> tuple[list[Record], list[Problem]]:
    """source_id per record: ``csv:id:<id>`` or the content key, unique per phonebook."""
    problems: list[Problem] = []
    kept: list[Record] = []
    # Per phonebook, key -> first line / count (nested: no tuple per row for big files).
    seen: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for rec, row_id in zip(records, ids, strict=True):
        book = (rec.owner.casefold(), rec.title)
        if row_id:
            key = f"{prefix}:id:{row_id}"
            first = seen[book].setdefault(key, rec.line)
            if first != rec.line:
                problems.append(Problem(rec.line, f"{what} {row_id!r} appears twice in "
                                        f"{rec.owner} / {rec.title} (first in line {first})"))
                continue
        else:
            # Duplicates (two "Max Müller" without company) are told apart by their order.
            base = content_key(rec.contact, prefix)
            n = counts[book][base] = counts[book].get(base, 0) + 1
            key = base if n == 1 else f"{base}#{n}"
        rec.source_id = _fit_id(key)
        kept.append(rec)
    return kept, problems


def import_csv(database: Database, path: str | Path, user: str | None = None,
               phonebook: str | None = None, dry_run: bool = False,
               region: str | None = None, strict: bool = False) -> ImportResult:
    """Import one CSV file; raises ``UsageError``/``CsvImportError`` and writes nothing on
    any problem. ``region`` defaults to the key ``default_region``."""
    t0 = time.perf_counter()
    records, result, problems = parse(path, user, phonebook, strict)
    result.timings["parse"] = time.perf_counter() - t0
    return write_records(database, records, result, problems, Origin.CSV, dry_run, region)


def write_records(database: Database, records: list[Record], result: ImportResult,
                  problems: list[Problem], writer: Origin, dry_run: bool = False,
                  region: str | None = None) -> ImportResult:
    """Check owners and phonebooks, then write every phonebook's diff in ONE transaction
    (or nothing: ``CsvImportError`` lists every problem). Shared by the file imports."""
    origin = writer.value
    result.dry_run = dry_run
    with database.session() as s:
        conf = settings_store.load(s)
        region = region or conf.default_region
        groups, more = _resolve(s, records, conf.phonebookname, writer)
        problems = problems + more
        if problems:
            raise CsvImportError(result.path, problems)
        spent = {"diff": 0.0, "write": 0.0}
        for (owner, title), recs in groups.items():
            t1 = time.perf_counter()
            book = pb.get_phonebook(s, owner, title)
            existing = pb.existing_entries(s, book.id, origin) if book is not None else {}
            plan = plan_book(existing, recs)
            del existing
            lines = plan.lines() if dry_run else []
            result.books.append(BookResult(owner.email or "", title, plan.counts(),
                                           book is None, lines))
            t2 = time.perf_counter()
            spent["diff"] += t2 - t1
            if not dry_run and not plan.empty:
                if book is None:
                    book = pb.ensure_phonebook(s, owner, title, source=origin)
                write_plan(s, book, plan, origin, region, conf.area_code)
            spent["write"] += time.perf_counter() - t2
        t3 = time.perf_counter()
        if dry_run:
            s.rollback()
    result.timings["diff"] = spent["diff"]
    result.timings["write"] = spent["write"] + time.perf_counter() - t3  # with the commit
    return result


def _resolve(s: Session, records: list[Record], sync_title: str, writer: Origin
             ) -> tuple[dict[tuple[User, str], list[Record]], list[Problem]]:
    """Owners by e-mail (case-insensitive) and the phonebooks this file import may fill."""
    problems: list[Problem] = []
    wanted = {r.owner.strip().lower() for r in records}
    users: dict[str, User] = {}
    for chunk in _chunks(sorted(wanted), 500):
        for found in s.scalars(select(User).where(User.email_key.in_(chunk))):
            users[found.email_key or ""] = found
    synced = {u.id for u in selected_users(s)}
    lines: dict[str, list[int]] = defaultdict(list)  # unknown owner (lower) -> its lines
    written: dict[str, str] = {}
    groups: dict[tuple[User, str], list[Record]] = defaultdict(list)
    for r in records:
        u = users.get(r.owner.strip().lower())
        if u is None:
            lines[r.owner.strip().lower()].append(r.line)
            written.setdefault(r.owner.strip().lower(), r.owner.strip())
            continue
        groups[(u, r.title)].append(r)
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
        if may_write(book.source if book else None, writer, reserved) is None:
            holder = origin_of(book.source) if book else reserved
            keeper = holder.label if holder else "not for file imports"
            what = "a vCard file" if writer is Origin.VCARD else "a CSV file"
            problems.append(Problem(first_line[(u.id, title)],
                                    f"{u.email} / {title} is {keeper}; {what} cannot fill "
                                    "it (use --phonebook OTHER or another title in the "
                                    "'phonebook' column)"))
    return dict(groups), problems


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
