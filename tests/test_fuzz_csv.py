"""Fuzzing import-csv (in-process, through the real CLI): whatever the bytes, either a clear
error (exit 2, one message line plus one line per problem, no traceback) with NOTHING written,
or a correct import; and generated files in every supported layout, delimiter, encoding and
quoting come back out of the phonebook exactly as generated (round trip).

The broad fuzz runs on SQLite; MariaDB and PostgreSQL get a few examples each (the `db_url`
fixture's backends). Hypothesis runs inside each test (an inner @given), so the function-scoped
fixtures are set up once per test and every example starts from the state the previous one
left; every check compares against a snapshot taken right before the example.
Profile (derandomized, no example database): tests/conftest.py.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from reliability.common import Snapshot, by_origin, snapshot
from ucware_contactsync.contact import NUMBER_TYPES
from ucware_contactsync.csvimport import formats as fm
from ucware_contactsync.phone import to_e164

DATA = Path(__file__).resolve().parent / "data" / "csv"
ANNA, BOB = "anna@contoso.de", "bob@contoso.de"
TITLES = ["Kunden", 'Fuzz "VIP"; ✓', "Lieferanten|2"]
CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")  # refused anywhere in a file (csv-format.md)
# What the phonebook never stores (phonebook.py drops it from every text it writes).
UNSTORABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
SUMMARY = re.compile(r"^\S+ / .+: \d+ added, \d+ updated, \d+ removed, \d+ unchanged"
                     r"( \(new phonebook\))?$")
FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                  HealthCheck.filter_too_much])


def examples(db_url: str, broad: int, servers: int) -> int:
    """Examples per test; $CONTACTSYNC_FUZZ_SCALE multiplies them for a longer hunt."""
    scale = int(os.environ.get("CONTACTSYNC_FUZZ_SCALE", "1"))
    return scale * (broad if db_url.startswith("sqlite") else servers)


@pytest.fixture
def prepared(cli):  # type: ignore[no-untyped-def]
    """Two users, and a hand-typed entry in every phonebook the fuzz may fill."""
    for email in (ANNA, BOB):
        assert cli("users", "add", email).code == 0
    for title in TITLES:
        r = cli("phonebook", "add", "--user", ANNA, "--phonebook", title, "--name", "Hand Hanna",
                "--number", "mobile:0170 1234567")
        assert r.code == 0, r.err
    return cli


def assert_clean_error(r, what: str = "") -> None:  # type: ignore[no-untyped-def]
    """Exit 2, nothing on stdout, one message line, then only indented problem lines."""
    assert r.code == 2, (r.code, r.out, r.err)
    assert r.out == "", r.out
    lines = r.err.rstrip("\n").split("\n")
    assert lines[0].startswith("error: "), r.err
    assert "unexpected error" not in r.err and "Traceback" not in r.err, r.err
    assert "\r" not in r.err, r.err
    assert all(line.startswith("  ") for line in lines[1:]), r.err
    assert re.search(what, r.err), (what, r.err)


def assert_imported_and_idempotent(r, cli, path: Path, args: list[str],  # type: ignore[no-untyped-def]
                                   before: Snapshot, db_url: str) -> None:
    """``r``, a successful import: summary lines only, hand entries and the phonebooks it does
    not name untouched, and importing the same file again changes nothing."""
    # One summary line per phonebook the file fills (none for a file of only a header).
    assert all(SUMMARY.match(line) for line in r.out.splitlines()), r.out
    after = snapshot(db_url)
    hand_before, hand_after = by_origin(before, ["manual"]), by_origin(after, ["manual"])
    assert hand_after == hand_before | {k: () for k in after if k not in before}
    named = r.out.lower()
    for (owner, title), entries in after.items():
        if f"{owner.lower()} / {title.lower()}: " not in named:
            assert entries == before.get((owner, title)), (owner, title)
    again = cli("import-csv", str(path), *args)
    assert again.code == 0, again.err
    assert all(" 0 added, 0 updated, 0 removed," in line for line in again.out.splitlines()), \
        again.out
    assert snapshot(db_url) == after


# --- any bytes ----------------------------------------------------------------------------------

SEEDS = [(p.name, p.read_bytes()) for p in sorted(DATA.glob("*.csv"))]
NASTY = [b'"', b",", b";", b"\t", b"|", b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xfe",
         b"\xc3", b"\x81", b"\xef\xbb\xbf", b"\x1b", b" ::: ", b"@", b"+49 89 1", b"\xe2\x80\xa8"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real export with a few bytes replaced, inserted or deleted."""
    _name, data = draw(st.sampled_from(SEEDS))
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "replace", "delete"]))
        chunk = draw(st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=3)))
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "replace":
            data[pos:pos + len(chunk)] = chunk
        else:
            del data[pos:pos + draw(st.integers(1, 20))]
    return bytes(data)


@st.composite
def header_then_noise(draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from([b"owner,phonebook,display_name,company,business,mobile\n",
                                   b"display_name;mobile;emails\r\n", b"First Name,Last Name,"
                                   b"Company,Business Phone,Mobile Phone,Notes\n"]))
    return header + draw(st.binary(max_size=200))


any_bytes = st.one_of(st.binary(max_size=300), mutated(), header_then_noise())


def test_any_bytes_clear_error_and_nothing_written_or_a_clean_import(prepared, db_url,
                                                                      tmp_path: Path) -> None:
    cli = prepared
    path = tmp_path / "fuzz.csv"
    args = ["--user", ANNA, "--phonebook", "Kunden"]

    @settings(max_examples=examples(db_url, 150, 12), **FUZZ)
    @given(data=any_bytes)
    def check(data: bytes) -> None:
        path.write_bytes(data)
        before = snapshot(db_url)
        r = cli("import-csv", str(path), *args)
        event(f"exit {r.code}")
        if r.code == 0:
            assert_imported_and_idempotent(r, cli, path, args, before, db_url)
        else:
            assert_clean_error(r)
            assert snapshot(db_url) == before

    check()


# --- round trip: generated files in every layout ------------------------------------------------

CLEAN = st.one_of(st.characters(blacklist_categories=("Cs", "Cc")),
                  st.sampled_from(list('",;|\t\' äöüßÄÖÜ€é😀👍🏽\u00a0\u2028\ufeff')))
# What Windows-1252 can hold (files "saved as CSV" by Outlook / Excel on Windows).
CP1252 = st.sampled_from([c for c in bytes(range(0x20, 0x100)).decode("cp1252", "ignore")
                          if c != "\x7f"] + ["\t"])
DIRTY = ["\n", "\r", "\r\n", "\x00", "\x07", "\x1b", "\x7f", "\x0b", "\x0c", "\x85"]
number = st.one_of(st.text("0123456789 +-/().", min_size=1, max_size=20),
                   st.sampled_from(["+49 89 12345-0", "089 / 12 34 56", "0171 1234567 ext. 12",
                                    "+41 31 928 09 60", "n/a", "(0221) 123456"]))
email = st.from_regex(r"[a-z0-9._+-]{1,8}@[a-z0-9äöü-]{1,8}\.(de|com|at)", fullmatch=True)
GOOGLE_LABELS = {"Mobile": "mobile", "* Mobile": "mobile", "Work": "business", "Home": "home",
                 "Work Fax": "business_fax", "Home Fax": "home_fax", "Other Fax": "other_fax",
                 "Pager": "pager", "Main": "primary", "Company Main": "company_main",
                 "Assistant": "assistant", "Callback": "callback", "Car": "car", "ISDN": "isdn",
                 "Radio": "radio", "Telex": "telex", "TTY/TDD": "tty", "Other": "other",
                 "Google Voice": "other", "Mobil": "mobile", "Arbeit": "business",
                 "Privat": "home", "Hauptnummer": "primary", "Eigenes Etikett ✓": "other",
                 "": "other"}
SECOND = {"business": "business2", "home": "home2"}


@dataclass
class Layout:
    """Where our fields go in one supported format (header names from docs/csv-format.md)."""

    title: str  # the format's name in the -v log line
    fields: dict[str, str]  # our field -> header
    emails: list[str]
    phones: dict[str, str] = field(default_factory=dict)  # our type -> header (fixed columns)
    pairs: tuple[str, str] | None = None  # Google "Phone N - <label>" / "Phone N - Value"
    category_sep: str = "; "
    extra: list[str] = field(default_factory=list)  # columns that are recognised, not imported


OUTLOOK_EN = {"given": "First Name", "middle": "Middle Name", "surname": "Last Name",
              "suffix": "Suffix", "company": "Company", "department": "Department",
              "job": "Job Title", "categories": "Categories", "notes": "Notes"}
LAYOUTS = {
    "outlook-en": Layout("Outlook export (English)", OUTLOOK_EN,
                         ["E-mail Address", "E-mail 2 Address", "E-mail 3 Address"],
                         {v: k for k, v in fm.OUTLOOK_EN_PHONES.items()},
                         extra=["Title", "Business City"]),
    "outlook-com": Layout("Outlook.com / new Outlook export", OUTLOOK_EN,
                          ["E-mail Address", "E-mail 2 Address"],
                          {v: k for k, v in fm.OUTLOOK_EN_PHONES.items()}, extra=["Nickname"]),
    "outlook-de": Layout("Outlook export (German)",
                         {"given": "Vorname", "middle": "Weitere Vornamen", "surname": "Nachname",
                          "suffix": "Suffix", "company": "Firma", "department": "Abteilung",
                          "job": "Position", "categories": "Kategorien", "notes": "Notizen"},
                         ["E-Mail-Adresse", "E-Mail 2: Adresse", "E-Mail 3: Adresse"],
                         {v: k for k, v in fm.OUTLOOK_DE_PHONES.items()}, extra=["Anrede"]),
    "google": Layout("Google Contacts export",
                     {"given": "First Name", "middle": "Middle Name", "surname": "Last Name",
                      "suffix": "Name Suffix", "company": "Organization Name",
                      "job": "Organization Title", "department": "Organization Department",
                      "categories": "Labels", "notes": "Notes"},
                     ["E-mail 1 - Value", "E-mail 2 - Value"], pairs=("Label", "Value"),
                     category_sep=" ::: ", extra=["E-mail 1 - Label", "Nickname"]),
    "google-legacy": Layout("Google Contacts export (legacy)",
                            {"display": "Name", "given": "Given Name", "middle": "Additional Name",
                             "surname": "Family Name", "suffix": "Name Suffix",
                             "company": "Organization 1 - Name", "job": "Organization 1 - Title",
                             "department": "Organization 1 - Department",
                             "categories": "Group Membership", "notes": "Notes"},
                            ["E-mail 1 - Value"], pairs=("Type", "Value"), category_sep=" ::: ",
                            extra=["E-mail 1 - Type", "Yomi Name"]),
    "own": Layout("ucware-contactsync layout",
                  {"display": "display_name", "given": "given_name", "surname": "surname",
                   "company": "company", "department": "department", "job": "job_title",
                   "categories": "categories", "owner": "owner", "book": "phonebook",
                   "id": "id"}, ["emails"], {t: t for t in NUMBER_TYPES}),
}


@dataclass
class Case:
    layout: str
    header: list[str]
    rows: list[dict[str, str]]  # header -> cell as written
    expected: list[tuple] | None  # entries (without source_id), None: the file must be refused
    ids: list[str]  # expected "csv:id:..." source ids
    refusal: str  # the expected error (a regular expression)
    args: list[str]
    title: str
    delimiter: str
    encoding: str
    quoting: int
    newline: str


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _place(numbers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A second business/home number becomes business2/home2 while that is free (docs)."""
    used: set[str] = set()
    out = []
    for kind, written in numbers:
        if kind in used and kind in SECOND and SECOND[kind] not in used:
            kind = SECOND[kind]
        used.add(kind)
        out.append((kind, written))
    return out


@st.composite
def person(draw: st.DrawFn, lay: Layout, pair_count: int, chars: st.SearchStrategy[str]
           ) -> dict[str, str]:
    """One row: header -> cell; text fields drawn from ``chars``."""
    text = st.text(chars, max_size=12)
    label = st.text(chars.filter(lambda c: c not in ";:*"), min_size=1, max_size=10)
    row: dict[str, str] = {}
    for key, header in lay.fields.items():
        if key in ("owner", "book", "id"):
            continue
        if key == "categories":
            cats = draw(st.lists(label, max_size=3))
            if lay.pairs and draw(st.booleans()):
                cats += ["* myContacts"]
            row[header] = draw(st.sampled_from(["; ", ";", " ::: "] if lay.pairs is None
                                               else [lay.category_sep])).join(cats)
        elif key == "notes":
            row[header] = draw(st.text(st.one_of(chars, st.just("\n")), max_size=30))
        else:
            row[header] = draw(text)
    mails = draw(st.lists(email, max_size=3))
    if len(lay.emails) == 1:
        row[lay.emails[0]] = draw(st.sampled_from(["; ", ";", " ::: "])).join(mails)
    else:
        for header, mail in zip(lay.emails, mails, strict=False):
            row[header] = mail if draw(st.integers(0, 4)) else "/o=ExchangeLabs/ou=Exchange/cn=x"
    if lay.pairs:
        for n in range(1, pair_count + 1):
            row[f"Phone {n} - {lay.pairs[0]}"] = draw(st.sampled_from(sorted(GOOGLE_LABELS)))
            row[f"Phone {n} - Value"] = " ::: ".join(draw(st.lists(number, max_size=2)))
    else:
        for kind in draw(st.lists(st.sampled_from(sorted(lay.phones)), max_size=3, unique=True)):
            row[lay.phones[kind]] = draw(number)
    for header in lay.extra:
        row[header] = draw(text)
    return row


def expected_entry(lay: Layout, header: list[str], row: dict[str, str]) -> tuple | None:
    """The entry a row must become (None: the row is a problem), by the documented rules."""
    f = {key: row.get(h, "").strip() for key, h in lay.fields.items()}  # absent: ""
    emails: list[str] = []
    numbers: list[tuple[str, str]] = []
    labels = {}
    for h in header:
        cell = row.get(h, "").strip()
        if h in lay.emails:
            emails += [m for m in re.split(r"\s*(?:;| ::: )\s*", cell) if "@" in m]
        elif lay.pairs and h.startswith("Phone ") and not h.endswith(" - Value"):
            labels[h.split()[1]] = cell
        elif lay.pairs and h.startswith("Phone ") and h.endswith(" - Value"):
            continue  # after all labels are known (a label column may come later)
        elif h in lay.phones.values():
            kind = next(k for k, v in lay.phones.items() if v == h)
            numbers += [(kind, p.strip()) for p in cell.split(" ::: ") if p.strip()]
    for h in header:
        if lay.pairs and h.startswith("Phone ") and h.endswith(" - Value"):
            kind = GOOGLE_LABELS.get(labels.get(h.split()[1], ""), "other")
            numbers += [(kind, p.strip()) for p in row[h].strip().split(" ::: ") if p.strip()]
    numbers = _place(numbers)
    emails_t = _dedupe(emails)
    display = f.get("display", "")
    if not display and lay.title != LAYOUTS["own"].title:
        display = " ".join(p for p in (f["given"], f.get("middle"), f["surname"], f.get("suffix"))
                           if p)
    name = (display or " ".join(p for p in (f["given"], f["surname"]) if p) or f["company"]
            or (emails_t[0] if emails_t else ""))
    if not name and not numbers:
        return None
    cats = [c.strip() for c in re.split(r"\s*(?:;| ::: )\s*", f.get("categories", ""))]
    cats = [c for c in cats if c != "* myContacts"]
    return stored(("csv", name, f["given"], f["surname"], f["company"], f["department"],
                   f["job"], emails_t, _dedupe(cats), tuple((k, n, None) for k, n in numbers)))


def stored(entry: tuple) -> tuple:
    """An entry as the phonebook keeps it: unstorable characters dropped, E.164 of what is
    kept (also applied to what was read back, so the check holds with or without them)."""
    def clean(v):  # type: ignore[no-untyped-def]
        return UNSTORABLE.sub("", v) if isinstance(v, str) else tuple(clean(x) for x in v)

    numbers = tuple((k, clean(n), to_e164(clean(n), "DE")) for k, n, _ in entry[-1])
    return tuple(clean(v) for v in entry[:-1]) + (numbers,)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    key = draw(st.sampled_from(sorted(LAYOUTS)))
    lay = LAYOUTS[key]
    title = draw(st.sampled_from(TITLES))
    pair_count = draw(st.integers(1, 3))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16", "utf-16-be"]))
    chars = CP1252 if encoding == "cp1252" else CLEAN
    people = draw(st.lists(person(lay, pair_count, chars), min_size=1, max_size=5))
    if key == "own":
        # Any subset of the own columns (at least two, one of them a name or number column:
        # a header of only owner, emails, ... is no recognisable format), in any order.
        pool = sorted(set(lay.fields.values()) | set(lay.emails) | set(lay.phones.values()))
        content = [h for h in pool if h not in ("owner", "phonebook", "id", "emails",
                                                "categories")]
        header = [draw(st.sampled_from(content))]
        header += draw(st.lists(st.sampled_from(pool).filter(lambda h: h not in header),
                                min_size=1, max_size=7, unique=True))
        header = draw(st.permutations(header))
    else:
        # Foreign exports: every column of the format, in any order (recognition needs them).
        header = sorted(set(lay.fields.values()) | set(lay.emails) | set(lay.phones.values())
                        | set(lay.extra) | {f"Phone {n} - {p}" for n in range(1, pair_count + 1)
                                            for p in (lay.pairs or ()) })
        header = draw(st.permutations(header))
    people = [{h: row.get(h, "") for h in header} for row in people]
    args: list[str] = []
    ids: list[str] = []
    if "owner" in header:
        for row in people:
            row["owner"] = draw(st.sampled_from([ANNA, ANNA.upper(), "Anna@Contoso.de", ""]))
    if "owner" not in header or any(not row["owner"] for row in people):
        args += ["--user", ANNA]
    if "phonebook" in header:
        for row in people:
            row["phonebook"] = draw(st.sampled_from([title, "", f" {title} "]))
    if "phonebook" not in header or any(not row["phonebook"].strip() for row in people):
        args += ["--phonebook", title]
    # One example in six: a character that must make the file be refused, or is harmless.
    if draw(st.integers(0, 5)) == 0:
        row = draw(st.sampled_from(people))
        col = draw(st.sampled_from([h for h in header if h not in ("owner", "phonebook", "id")]))
        pos = draw(st.integers(0, len(row[col])))
        row[col] = row[col][:pos] + draw(st.sampled_from(DIRTY)) + "x" + row[col][pos:]
    # Completely empty rows are skipped (docs); a file of only those imports nothing.
    people = [row for row in people if any(v.strip() for v in row.values())]
    assume(people)
    if "id" in header:
        raw = draw(st.lists(st.text("abcxyz019-_ äö✓", min_size=1, max_size=6)
                            .filter(lambda s: s.strip()), min_size=len(people),
                            max_size=len(people), unique_by=lambda s: s.strip()))
        for row, rid in zip(people, raw, strict=True):
            row["id"] = rid if draw(st.integers(0, 4)) else ""
            if row["id"]:
                ids.append("csv:id:" + rid.strip())
    free_text = {lay.fields.get("notes"), *lay.extra}  # not imported: line breaks allowed
    refusal = ""
    expected: list[tuple] | None = None
    if any(CONTROL.search(v) for row in people for v in row.values()):
        refusal = "control character|NUL byte"
    elif any(re.search("[\r\n]", v.strip()) for row in people for h, v in row.items()
             if h not in free_text):
        refusal = "line break inside column"
    else:
        entries = [expected_entry(lay, header, row) for row in people]
        if any(e is None for e in entries):
            refusal = "neither a name nor a phone number"
        else:
            expected = sorted(entries)  # type: ignore[type-var]
    return Case(key, header, people, expected, ids, refusal, args, title,
                draw(st.sampled_from([",", ";", "\t", "|"])), encoding,
                draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
                draw(st.sampled_from(["\r\n", "\n"])))


def render(case: Case) -> tuple[bytes, str]:
    """(file bytes, the encoding the importer must report)."""
    buf = io.StringIO()
    quoting = case.quoting
    if any("\r" in v for row in case.rows for v in row.values()):
        quoting = csv.QUOTE_ALL  # QUOTE_MINIMAL leaves a bare CR unquoted with "\n" lines
    w = csv.writer(buf, delimiter=case.delimiter, quoting=quoting, lineterminator=case.newline)
    w.writerow(case.header)
    for row in case.rows:
        w.writerow([row.get(h, "") for h in case.header])
    text = buf.getvalue()
    if case.encoding == "utf-16-be":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be"), "utf-16"
    if case.encoding == "cp1252":
        try:
            data = text.encode("cp1252")
        except UnicodeEncodeError:
            return text.encode("utf-8"), "utf-8"
        try:
            # Documented: strict UTF-8 is tried first. cp1252 bytes that happen to be valid
            # UTF-8 ("Ã¤") are ambiguous and read as UTF-8; only the clear cases are checked.
            assume(data.decode("utf-8") == text)
            return data, "utf-8"
        except UnicodeDecodeError:
            return data, "cp1252"
    return text.encode(case.encoding), case.encoding


def test_generated_files_round_trip_in_every_layout(prepared, db_url, tmp_path: Path) -> None:
    cli = prepared
    path = tmp_path / "generated.csv"

    @settings(max_examples=examples(db_url, 150, 10), **FUZZ)
    @given(case=cases())
    def check(case: Case) -> None:
        data, encoding = render(case)
        event(f"{case.layout}, {encoding}: {case.refusal or 'imported'}")
        path.write_bytes(data)
        before = snapshot(db_url)
        if case.expected is None:
            r = cli("import-csv", str(path), *case.args)
            assert_clean_error(r, case.refusal)
            assert snapshot(db_url) == before
            return
        r = cli("-v", "import-csv", str(path), *case.args)
        assert r.code == 0, r.err
        delimiter = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}[case.delimiter]
        assert (f": {LAYOUTS[case.layout].title}, {encoding}, {delimiter}-separated, "
                f"{len(case.rows)} rows") in r.err, r.err
        after = snapshot(db_url)
        book = after[(ANNA, case.title)]
        got = sorted(stored(e[:1] + e[2:]) for e in book if e[0] == "csv")
        assert got == case.expected
        assert {e[1] for e in book if e[1] and e[1].startswith("csv:id:")} == set(case.ids)
        # Everything else is as it was: hand entries, and the phonebooks the file did not name.
        assert [e for e in book if e[0] != "csv"] == [e for e in before[(ANNA, case.title)]
                                                      if e[0] != "csv"]
        assert {k: v for k, v in after.items() if k != (ANNA, case.title)} == \
            {k: v for k, v in before.items() if k != (ANNA, case.title)}
        again = cli("import-csv", str(path), *case.args)
        assert again.out.strip().endswith(f"0 added, 0 updated, 0 removed, {len(case.rows)} "
                                          "unchanged"), again.out + again.err

    check()


# --- what the fuzz found, pinned ----------------------------------------------------------------

FOUND = {
    # A BOM used to skip the control-character check: NUL and ESC reached the phonebook
    # (PostgreSQL refuses NUL: the import ended in an unexpected error).
    "utf8-bom-nul": (codecs.BOM_UTF8 + b"display_name,mobile\r\nMax\x00,0171 1\r\n",
                     "line 2: control character U\\+0000"),
    "utf16-esc": ("display_name\tmobile\r\nMax\x1b[31m\t0171 1\r\n".encode("utf-16"),
                  "line 2: control character U\\+001B"),
    # A header cell with a line break was printed raw: a problem spanning two lines.
    "header-line-break": (b'display_name,"mo\nbil"\nMax,0171 1\n', "unknown column 'mo\\\\nbil'"),
    "foreign-header-line-break": (b'First Name,"Business\nPhone"\nMax,"089\n1"\n',
                                  "line 3: line break inside column 'Business\\\\nPhone'"),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_by_fuzzing(prepared, db_url, tmp_path: Path, case: str) -> None:
    cli = prepared
    data, message = FOUND[case]
    path = tmp_path / "found.csv"
    path.write_bytes(data)
    before = snapshot(db_url)
    assert_clean_error(cli("import-csv", str(path), "--user", ANNA, "--phonebook", "Kunden"),
                       message)
    assert snapshot(db_url) == before
