"""vCard import (``import-vcard``): the same promises as the CSV import, for .vcf files.

vCard 2.1, 3.0 and 4.0 as iPhone/macOS, Android/Google, Outlook and Nextcloud write them are
read by ``vobject`` (folded lines, quoted-printable, CHARSET parameters, ``item1.`` groups);
this module only maps properties onto our contact fields:

* name: ``FN``, else the parts of ``N``; company and department: ``ORG``; ``TITLE``, ``EMAIL``,
  ``CATEGORIES``;
* numbers: ``TEL`` (and Outlook's ``X-MS-TEL``), typed from the TYPE parameters in every
  spelling (``TEL;WORK;VOICE``, ``TYPE=work,voice``, ``TYPE="cell,voice"``) or, for Apple's
  ``itemN.TEL``, from the group's ``X-ABLabel`` (``_$!<Mobile>!$_`` or a label typed by the user);
* the key that makes a card "the same" on re-import: its ``UID`` (``X-ABUID``), else name +
  company like a CSV row without id.

The whole file is checked first; any problem and nothing is written (``CsvImportError``).
The phonebook belongs to the vCard import (``Origin.VCARD``); hand entries stay untouched.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import vobject

from .contact import Contact, PhoneNumber
from .csvimport import formats as fm
from .csvimport.importer import (
    CsvImportError,
    ImportResult,
    Problem,
    assign_keys,
    read_file,
    write_records,
)
from .csvimport.mapping import place_numbers
from .csvimport.plan import Record
from .csvimport.reader import ACCEPTED_ENCODINGS, ReadError, decode
from .db import Database
from .errors import UsageError
from .ownership import Origin

PREFIX = "vcard"
_BEGIN = re.compile(r"^BEGIN:VCARD\s*$", re.IGNORECASE | re.MULTILINE)
_APPLE_LABEL = re.compile(r"^_\$!<(.*)>!\$_$")
# Apple's built-in labels (inside _$!<...>!$_) that the Google/German label map does not know.
_APPLE_TYPES = {"homefax": "home_fax", "workfax": "business_fax", "otherfax": "other_fax",
                "main": "primary", "iphone": "mobile", "applewatch": "mobile"}
# TYPE parameter words -> our types, most specific first (a work fax is a fax, not work).
_FAX_TYPES = {"work": "business_fax", "home": "home_fax"}
_PLAIN_TYPES = (
    ("cell", "mobile"), ("mobile", "mobile"), ("iphone", "mobile"), ("pager", "pager"),
    ("car", "car"), ("isdn", "isdn"), ("textphone", "tty"), ("ttytdd", "tty"), ("tty", "tty"),
    ("assistant", "assistant"), ("company", "company_main"), ("callback", "callback"),
    ("radio", "radio"), ("main", "primary"), ("work", "business"), ("home", "home"),
)


def _param_words(line: Any) -> set[str]:
    """Every TYPE word of a content line, however it was written (2.1 bare words, 3.0 repeated
    TYPE=, 4.0 quoted comma lists), lower case."""
    words: list[str] = list(line.singletonparams)
    for value in line.params.get("TYPE", []):
        words.extend(value.split(","))
    return {w.strip().strip('"').casefold() for w in words if w.strip()}


def _label_type(label: str) -> str:
    """Our type for an X-ABLabel: Apple's built-in ``_$!<HomeFAX>!$_`` or a typed label."""
    m = _APPLE_LABEL.match(label.strip())
    text = m.group(1) if m else label
    key = text.replace(" ", "").casefold()
    return _APPLE_TYPES.get(key) or fm.google_type(text)


def phone_type(line: Any, label: str | None = None) -> str:
    if label:
        return _label_type(label)
    words = _param_words(line)
    if "fax" in words:
        return next((t for w, t in _FAX_TYPES.items() if w in words), "other_fax")
    found = next((t for w, t in _PLAIN_TYPES if w in words), None)
    if found is None and "pref" in words and line.name.upper() == "TEL" and len(words) == 1:
        return "primary"  # Outlook writes its primary phone as TEL;PREF
    return found or "other"


def _number(value: str) -> str:
    """The number as written; vCard 4.0's ``tel:`` URI without scheme, ``;ext=`` as text."""
    text = value.strip()
    if text.casefold().startswith("tel:"):
        text, _, ext = text[4:].partition(";ext=")
        text = f"{text} ext. {ext}" if ext else text
    return text


def _text(card: Any, name: str) -> str:
    line = card.contents.get(name, [None])[0]
    value = line.value if line is not None else ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()


def to_contact(card: Any) -> tuple[Contact, str]:
    """(contact, uid) of one parsed vCard."""
    labels = {line.group.casefold(): str(line.value) for line in card.contents.get("x-ablabel", [])
              if line.group}
    numbers: list[PhoneNumber] = []
    for name in ("tel", "x-ms-tel"):
        for line in card.contents.get(name, []):
            number = _number(str(line.value))
            if number:
                label = labels.get((line.group or "").casefold())
                numbers.append(PhoneNumber(phone_type(line, label), number))
    given = surname = middle = ""
    if "n" in card.contents:
        n = card.contents["n"][0].value
        given, surname, middle = (str(n.given or "").strip(), str(n.family or "").strip(),
                                  str(n.additional or "").strip())
    org: list[str] = []
    if "org" in card.contents:
        value = card.contents["org"][0].value
        org = [str(v).strip() for v in (value if isinstance(value, list) else [value])]
    company = org[0] if org else ""
    display = _text(card, "fn")
    person = " ".join(p for p in (given, middle, surname) if p)
    if not display or (person and display.casefold() == company.casefold()):
        display = person or display  # a person's name wins over a company-only FN
    emails = [str(line.value).strip() for line in card.contents.get("email", [])]
    cats: list[str] = []
    for line in card.contents.get("categories", []):
        value = line.value
        cats.extend(str(v).strip() for v in (value if isinstance(value, list) else [value]))
    contact = Contact(
        display_name=display, given_name=given, surname=surname, company=company,
        department=org[1] if len(org) > 1 else "", job_title=_text(card, "title"),
        emails=tuple(dict.fromkeys(e for e in emails if "@" in e)),
        numbers=tuple(place_numbers(numbers)),
        # Google marks every contact "myContacts": a system group, no category.
        categories=tuple(dict.fromkeys(c for c in cats if c and c.casefold() != "mycontacts")),
    )
    uid = _text(card, "uid") or _text(card, "x-abuid")
    return contact, uid


_QP = re.compile(r"^[^:]*;(?:ENCODING=)?QUOTED-PRINTABLE[;:]", re.IGNORECASE)
_QP_BYTE = re.compile(r"=([0-9A-Fa-f]{2})")


def _prepare(text: str) -> str:
    """Two vCard 2.1 habits vobject does not handle: quoted-printable soft line breaks (a
    value continued after a trailing ``=``, as Android and Outlook write long values), and
    quoted-printable bytes without CHARSET (Outlook's Windows-1252 ``Hauptstra=DFe``): the
    charset is named for vobject, UTF-8 where the bytes are UTF-8, else Windows-1252."""
    out: list[str] = []
    lines = iter(text.split("\n"))
    for line in lines:
        joined = 0
        if _QP.match(line):
            while line.endswith("=") and not line.endswith("=="):
                nxt = next(lines, None)
                if nxt is None:
                    break
                line, joined = line[:-1] + nxt, joined + 1
            head, _, value = line.partition(":")
            if "charset=" not in head.casefold():
                raw = bytes(int(h, 16) for h in _QP_BYTE.findall(value))
                try:
                    raw.decode("utf-8")
                    charset = "UTF-8"
                except UnicodeDecodeError:
                    charset = "WINDOWS-1252"
                line = f"{head};CHARSET={charset}:{value}"
        out.append(line)
        out.extend([""] * joined)  # blank lines keep the line numbers of what follows
    return "\n".join(out)


def _cards(text: str) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """(start line, vobject component) of every card; problems carry their line."""
    starts = [text.count("\n", 0, m.start()) + 1 for m in _BEGIN.finditer(text)]
    if not starts:
        return [], [Problem(1, "no BEGIN:VCARD found; is this a vCard (.vcf) file?")]
    cards: list[tuple[int, Any]] = []
    try:
        for i, card in enumerate(vobject.readComponents(text, validate=False)):
            if card.name.upper() != "VCARD":
                return cards, [Problem(1, f"{card.name} is not a vCard")]
            cards.append((starts[i] if i < len(starts) else starts[-1], card))
    except (vobject.base.ParseError, UnicodeError, ValueError, IndexError) as exc:
        reason = str(exc).split("\n")[0].strip() or type(exc).__name__
        reason = re.sub(r"^At line \d+: ", "", reason)  # vobject's count, see _error_line
        return cards, [Problem(_error_line(text, reason, starts, len(cards)),
                               f"not a valid vCard line ({reason[:120]})")]
    return cards, []


def _error_line(text: str, reason: str, starts: list[int], done: int) -> int:
    """The line vobject failed on (its own line count is off for some line ends): the line
    its message quotes, else the start of the card it was reading."""
    _, sep, bad = reason.partition("Failed to parse line: ")
    if sep and bad.strip():
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip() == bad.strip():
                return number
    return starts[min(done, len(starts) - 1)]


def parse(path: str | Path, user: str | None, phonebook: str | None
          ) -> tuple[list[Record], ImportResult, list[Problem]]:
    """Read and check the file without a database; records get their keys here."""
    path = Path(path)
    shown = str(path)
    if not user:
        raise UsageError(f"a vCard file does not say whose phonebook to fill ({shown})",
                         "add --user EMAIL")
    if not phonebook:
        raise UsageError(f"a vCard file does not say which phonebook to fill ({shown})",
                         "add --phonebook NAME (e.g. --phonebook Kunden)")
    data = read_file(path, "vCard (.vcf)")
    try:
        text, encoding = decode(data)
    except ReadError as exc:
        raise CsvImportError(shown, [Problem(exc.line, exc.message)],
                             f"save it as vCard in {ACCEPTED_ENCODINGS} and run again") from None
    if not text.strip():
        raise UsageError(f"{shown} is empty", "export the contacts again")
    # vobject counts "\r\n" as two lines; one kind of line end keeps problem lines right.
    text = _prepare(text.replace("\r\n", "\n").replace("\r", "\n"))
    cards, problems = _cards(text)
    result = ImportResult(shown, "vCard", encoding, "", 0, False)
    records: list[Record] = []
    ids: list[str] = []
    for line, card in cards:
        contact, uid = to_contact(card)
        if not contact.name and not contact.numbers:
            problems.append(Problem(line, "neither a name nor a phone number"))
            continue
        records.append(Record(line, user, phonebook, contact))
        ids.append(uid)
    versions = sorted({_text(c, "version") for _, c in cards} - {""})
    result.format = f"vCard {', '.join(versions)}".strip()
    records, more = assign_keys(records, ids, PREFIX, "UID")
    result.rows = len(records)
    return records, result, problems + more


def import_vcard(database: Database, path: str | Path, user: str | None = None,
                 phonebook: str | None = None, dry_run: bool = False,
                 region: str | None = None) -> ImportResult:
    """Import one vCard file into ``phonebook`` of ``user``; all or nothing, like CSV."""
    t0 = time.perf_counter()
    records, result, problems = parse(path, user, phonebook)
    result.timings["parse"] = time.perf_counter() - t0
    return write_records(database, records, result, problems, Origin.VCARD, dry_run, region)
