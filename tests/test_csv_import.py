"""import-csv against SQLite, MariaDB and PostgreSQL: fill, re-import, refuse bad files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ucware_contactsync.contact import Contact, PhoneNumber
from ucware_contactsync.csvimport import CsvImportError, import_csv
from ucware_contactsync.directory import require_user
from ucware_contactsync.phonebook import ensure_phonebook, get_phonebook

DATA = Path(__file__).resolve().parent / "data" / "csv"
ANNA, BOB = "anna@contoso.de", "bob@contoso.de"


@pytest.fixture
def users(cli):  # type: ignore[no-untyped-def]
    for email in ("Anna@Contoso.de", "Bob@Contoso.de"):
        assert cli("users", "add", email).code == 0
    return cli


def show(cli) -> str:  # type: ignore[no-untyped-def]
    r = cli("phonebook", "show", "--json")
    assert r.code == 0, r.err
    return r.out


def books(cli) -> dict[tuple[str, str], dict]:  # type: ignore[no-untyped-def]
    return {(b["owner"].lower(), b["name"]): b for b in json.loads(show(cli))}


def names(book: dict) -> list[str]:
    return sorted(e["display_name"] for e in book["entries"])


def summary(out: str) -> dict[str, str]:
    """'owner / title: ...' lines by 'owner / title' (owner lower-cased)."""
    got = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+) / (.+?): (\d+ added, \d+ updated, \d+ removed, \d+ unchanged)", line)
        if m:
            got[f"{m[1].lower()} / {m[2]}"] = m[3]
    return got


def add_office365_entry(database, owner: str, title: str, source: str = "manual"):  # type: ignore[no-untyped-def]
    """An entry as the Office 365 sync writes it (origin office365, an EWS item id)."""
    from ucware_contactsync.model import Entry
    from ucware_contactsync.phonebook import entry_values

    with database.session() as s:
        book = ensure_phonebook(s, require_user(s, owner), title, source)
        values = entry_values(Contact(display_name="Outlook Olga", source_id="AAMkAGI2TG93AAA=",
                                      numbers=(PhoneNumber("business", "089 998877"),)))
        s.add(Entry(phonebook_id=book.id, origin="office365", **values))


# --- the own layout: three phonebooks of two users, then a re-import after edits -------------

def test_own_layout_fills_three_phonebooks_then_reimport_syncs(users, database):
    cli = users
    r = cli("import-csv", str(DATA / "own_v1.csv"))
    assert r.code == 0, r.err
    assert summary(r.out) == {
        f"{ANNA} / Kunden": "2 added, 0 updated, 0 removed, 0 unchanged",
        f"{ANNA} / Lieferanten": "3 added, 0 updated, 0 removed, 0 unchanged",
        f"{BOB} / Kunden": "2 added, 0 updated, 0 removed, 0 unchanged",
    }
    got = books(cli)
    assert set(got) == {(ANNA, "Kunden"), (ANNA, "Lieferanten"), (BOB, "Kunden")}
    assert all(b["source"] == "csv" for b in got.values())
    max_ = next(e for e in got[(ANNA, "Kunden")]["entries"] if e["display_name"] == "Max Müller")
    assert max_["source_id"] == "csv:key:max müller|acme gmbh"
    assert max_["numbers"] == [
        {"type": "business", "number": "089 123456-0", "e164": "+49891234560"},
        {"type": "mobile", "number": "0171 1111111", "e164": "+491711111111"}]
    eva = next(e for e in got[(ANNA, "Kunden")]["entries"] if e["display_name"] == "Eva Schmidt")
    assert eva["emails"] == ["eva@contoso.de", "eva.s@contoso.de"]
    meiers = [e for e in got[(ANNA, "Lieferanten")]["entries"] if e["display_name"] == "Hans Meier"]
    assert [e["source_id"] for e in meiers] == ["csv:key:hans meier|", "csv:key:hans meier|#2"]

    # What must survive: an entry typed by hand and one from the Office 365 sync in the same
    # phonebook, and the user's Office 365 phonebook.
    assert cli("phonebook", "add", "--user", ANNA, "--phonebook", "Kunden", "--name",
               "Hand Hanna", "--number", "mobile:0170 1234567").code == 0
    add_office365_entry(database, ANNA, "Kunden")
    add_office365_entry(database, ANNA, "Privat", source="office365")
    before = books(cli)

    # A dry run shows the diff and writes nothing.
    r = cli("import-csv", str(DATA / "own_v2.csv"), "--dry-run")
    assert r.code == 0, r.err
    assert "+ Paul Klein" in r.out and "~ Max Müller" in r.out and "- Eva Schmidt" in r.out
    assert "+ Zoë Bauer" in r.out and "~ Lena Wolf" in r.out
    assert books(cli) == before

    r = cli("import-csv", str(DATA / "own_v2.csv"))
    assert r.code == 0, r.err
    assert summary(r.out) == {
        f"{ANNA} / Kunden": "1 added, 1 updated, 1 removed, 0 unchanged",
        f"{ANNA} / Lieferanten": "0 added, 0 updated, 0 removed, 3 unchanged",
        f"{BOB} / Kunden": "1 added, 1 updated, 0 removed, 1 unchanged",
    }
    after = books(cli)
    assert names(after[(ANNA, "Kunden")]) == ["Hand Hanna", "Max Müller", "Outlook Olga",
                                               "Paul Klein"]
    kunden = {e["display_name"]: e for e in after[(ANNA, "Kunden")]["entries"]}
    assert kunden["Hand Hanna"]["source_id"] is None
    assert kunden["Outlook Olga"]["source_id"] == "AAMkAGI2TG93AAA="
    assert kunden["Max Müller"]["numbers"][1]["e164"] == "+491719999999"
    assert after[(ANNA, "Privat")] == before[(ANNA, "Privat")]
    assert after[(ANNA, "Lieferanten")] == before[(ANNA, "Lieferanten")]
    assert names(after[(BOB, "Kunden")]) == ["Lena Wolf", "Max Müller", "Zoë Bauer"]

    # Importing the same file again changes nothing.
    r = cli("import-csv", str(DATA / "own_v2.csv"))
    assert r.code == 0 and summary(r.out) == {
        f"{ANNA} / Kunden": "0 added, 0 updated, 0 removed, 2 unchanged",
        f"{ANNA} / Lieferanten": "0 added, 0 updated, 0 removed, 3 unchanged",
        f"{BOB} / Kunden": "0 added, 0 updated, 0 removed, 3 unchanged",
    }
    assert books(cli) == after


def test_id_column_makes_renames_updates(users, tmp_path: Path):
    cli = users
    f = tmp_path / "ids.csv"
    f.write_text("id,display_name,company,mobile\n17,Anna Alt,A,0171 1\n18,Bernd,B,0171 2\n",
                 encoding="utf-8")
    assert cli("import-csv", str(f), "--user", ANNA, "--phonebook", "Team").code == 0
    f.write_text("id,display_name,company,mobile\n17,Anna Neu,A2,0171 1\n", encoding="utf-8")
    r = cli("import-csv", str(f), "--user", ANNA, "--phonebook", "Team")
    assert r.code == 0, r.err
    assert summary(r.out) == {f"{ANNA} / Team": "0 added, 1 updated, 1 removed, 0 unchanged"}
    entry = books(cli)[(ANNA, "Team")]["entries"][0]
    assert (entry["display_name"], entry["source_id"]) == ("Anna Neu", "csv:id:17")


# --- real-world exports ----------------------------------------------------------------------

def test_german_outlook_cp1252_into_manual_phonebook_keeps_hand_entries(users):
    cli = users
    assert cli("phonebook", "add", "--user", BOB, "--phonebook", "Outlook", "--name",
               "Per Hand", "--number", "home:040 1").code == 0
    r = cli("import-csv", str(DATA / "outlook_de_cp1252.csv"), "--user", "BOB@contoso.DE",
            "--phonebook", "Outlook")
    assert r.code == 0, r.err
    assert summary(r.out) == {f"{BOB} / Outlook": "3 added, 0 updated, 0 removed, 0 unchanged"}
    book = books(cli)[(BOB, "Outlook")]
    assert book["source"] == "manual"  # an existing manual phonebook stays manual
    assert names(book) == ["Jörg Müller", "Per Hand", "Stadtwerke Süd", "Änne Özdemir"]
    joerg = next(e for e in book["entries"] if e["display_name"] == "Jörg Müller")
    assert joerg["company"] == "Bäckerei Müller & Söhne"
    assert {n["type"]: n["e164"] for n in joerg["numbers"]}["business"] == "+49891234560"
    r = cli("lookup", "+41319280960", "--json")
    assert r.code == 0 and json.loads(r.out)[0]["display_name"] == "Änne Özdemir"


def test_google_export_with_bom_and_multiline_notes(users):
    cli = users
    r = cli("import-csv", str(DATA / "google_bom.csv"), "--user", ANNA, "--phonebook", "Google")
    assert r.code == 0, r.err
    book = books(cli)[(ANNA, "Google")]
    assert names(book) == ["Lukas Schär", "Mia Wong", "Pizza Roma"]
    lukas = next(e for e in book["entries"] if e["display_name"] == "Lukas Schär")
    assert [(n["type"], n["e164"]) for n in lukas["numbers"]] == [
        ("business", "+41319280960"), ("business2", "+41319280961"),
        ("mobile", "+41792648866"), ("business_fax", "+41319280999")]


def test_semicolon_sheet_from_german_excel(users):
    cli = users
    r = cli("import-csv", str(DATA / "excel_de_semicolon.csv"), "--user", ANNA,
            "--phonebook", "Lieferanten")
    assert r.code == 0, r.err
    book = books(cli)[(ANNA, "Lieferanten")]
    zentrale = next(e for e in book["entries"] if e["display_name"] == "Grüße GmbH Zentrale")
    assert zentrale["emails"] == ["info@gruesse.de", "vertrieb@gruesse.de"]
    assert zentrale["numbers"][0]["e164"] == "+4991147110"
    gross = next(e for e in book["entries"] if e["display_name"] == "Herr Groß")
    assert gross["numbers"][0]["e164"] == "+4315354321"


def test_library_function_without_cli(users, database):
    result = import_csv(database, DATA / "own_v1.csv", region="DE")
    # Owners are shown as the admin typed them (users add Anna@Contoso.de), in file order.
    assert [b.summary() for b in result.books] == [
        "Anna@Contoso.de / Kunden: 2 added, 0 updated, 0 removed, 0 unchanged (new phonebook)",
        "Anna@Contoso.de / Lieferanten: 3 added, 0 updated, 0 removed, 0 unchanged "
        "(new phonebook)",
        "Bob@Contoso.de / Kunden: 2 added, 0 updated, 0 removed, 0 unchanged (new phonebook)",
    ]
    assert set(result.timings) == {"parse", "diff", "write"}
    assert result.format == "ucware-contactsync layout" and result.rows == 7
    with database.session() as s:
        assert get_phonebook(s, require_user(s, BOB), "Kunden") is not None


# --- bad files change nothing ----------------------------------------------------------------

BAD = {
    "unbalanced": (
        b"owner,phonebook,display_name,mobile\n"
        b"anna@contoso.de,Kunden,Max M\xc3\xbcller,0171 9\n"
        b"anna@contoso.de,Kunden,Neu,0171 8\n"
        b"anna@contoso.de,Kunden,\"Eva Schmidt,0171 7\n"
        b"anna@contoso.de,Kunden,Paul,0171 6\n",
        4, "unbalanced quotes"),
    "encoding": (
        "owner,phonebook,display_name,mobile\nanna@contoso.de,Kunden,Max,0171 9\n"
        .encode("utf-16-le"), 1, "UTF-8"),
    "bad_byte": (
        b"owner,phonebook,display_name,mobile\nanna@contoso.de,Kunden,Max,0171 9\n"
        b"anna@contoso.de,Kunden,M\x81ller,0171 9\n", 3, "Windows-1252"),
    "missing_owner": (
        b"owner,phonebook,display_name,mobile\nanna@contoso.de,Kunden,Neu,0171 9\n"
        b",Kunden,Niemand,0171 8\n", 3, "no owner"),
    "unknown_user": (
        b"owner,phonebook,display_name,mobile\nanna@contoso.de,Kunden,Neu,0171 9\n"
        b"nobody@contoso.de,Kunden,Wer,0171 8\n", 3, "no user with e-mail nobody@contoso.de"),
    "no_name_no_number": (
        b"owner,phonebook,display_name,mobile\nanna@contoso.de,Kunden,,\xc2\xa0\n"
        b"anna@contoso.de,Kunden,,\n", 2, "neither a name nor a phone number"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_changes_nothing_and_names_the_line(users, database, tmp_path: Path, case: str):
    cli = users
    assert cli("import-csv", str(DATA / "own_v1.csv")).code == 0
    assert cli("phonebook", "add", "--user", ANNA, "--phonebook", "Kunden", "--name", "Hand",
               "--number", "mobile:0170 1").code == 0
    before = show(cli)
    data, line, words = BAD[case]
    f = tmp_path / f"{case}.csv"
    f.write_bytes(data)
    r = cli("import-csv", str(f))
    assert r.code == 2, r.out + r.err
    first = r.err.splitlines()[0]
    assert "nothing was imported" in first and ("fix" in first or "save" in first), first
    assert f"line {line}:" in r.err and words in r.err, r.err
    assert "Traceback" not in r.err
    assert show(cli) == before  # byte-identical JSON


def test_missing_owner_column_without_user_and_missing_phonebook(users, tmp_path: Path):
    cli = users
    f = tmp_path / "x.csv"
    f.write_text("display_name,mobile\nMax,0171 1\n", encoding="utf-8")
    r = cli("import-csv", str(f), "--phonebook", "K")
    assert r.code == 2 and "add --user EMAIL" in r.err.splitlines()[0]
    r = cli("import-csv", str(f), "--user", ANNA)
    assert r.code == 2 and "add --phonebook NAME" in r.err.splitlines()[0]
    assert show(cli).strip() == "[]"


def test_office365_phonebook_cannot_be_targeted(users, database, tmp_path: Path):
    cli = users
    add_office365_entry(database, ANNA, "Privat", source="office365")
    before = show(cli)
    f = tmp_path / "x.csv"
    f.write_text("display_name,mobile\nMax,0171 1\n", encoding="utf-8")
    r = cli("import-csv", str(f), "--user", ANNA, "--phonebook", "Privat")
    assert r.code == 2
    assert "Office 365 sync" in r.err and "--phonebook OTHER" in r.err and "line 2" in r.err
    assert show(cli) == before


def test_sync_users_phonebookname_is_reserved_even_before_first_sync(cli, admin_setup,
                                                                     tmp_path: Path):
    admin_setup(ANNA)
    f = tmp_path / "x.csv"
    f.write_text("display_name,mobile\nMax,0171 1\n", encoding="utf-8")
    r = cli("import-csv", str(f), "--user", ANNA, "--phonebook", "Privat")
    assert r.code == 2 and "Office 365 sync" in r.err
    assert cli("import-csv", str(f), "--user", ANNA, "--phonebook", "Kunden").code == 0


def test_problem_list_is_capped(users, database, tmp_path: Path):
    f = tmp_path / "x.csv"
    f.write_text("owner,phonebook,display_name\n" + "anna@contoso.de,K,\n" * 30, encoding="utf-8")
    with pytest.raises(CsvImportError) as exc:
        import_csv(database, f)
    text = str(exc.value)
    assert text.splitlines()[0].startswith(f"{f}: 30 problems, nothing was imported")
    assert "line 21:" in text and "line 22:" not in text and "and 10 more" in text


def test_line_numbers_count_physical_lines_of_multiline_cells(users, tmp_path: Path):
    cli = users
    f = tmp_path / "google.csv"
    data = (DATA / "google_bom.csv").read_bytes()
    assert data.count(b"\n") == 9  # header + 8 physical lines of 3 contacts (notes span lines)
    f.write_bytes(data + b",,,,,,,,,,,,,,,,only a label,,,,,,,,,,,,,\r\n")
    r = cli("import-csv", str(f), "--user", ANNA, "--phonebook", "Google")
    assert r.code == 2
    assert "line 10: neither a name nor a phone number" in r.err, r.err
    r = cli("import-csv", str(DATA / "google_bom.csv"), "--user", "nobody@contoso.de",
            "--phonebook", "Google")
    assert r.code == 2
    assert "line 2: no user with e-mail nobody@contoso.de (and 2 more lines)" in r.err, r.err
    assert show(cli).strip() == "[]"


def test_import_waits_for_no_one_and_exits_75_while_a_sync_holds_the_lock(cli, db_url, tmp_path,
                                                                           monkeypatch):
    from ucware_contactsync.sync.lock import RunLock

    monkeypatch.setenv("CONTACTSYNC_LOCK_DIR", str(tmp_path))
    assert cli("users", "add", "anna@example.de").code == 0
    f = tmp_path / "k.csv"
    f.write_text("display_name,mobile\nAnna Test,0171 1234567\n", encoding="utf-8")
    with RunLock(db_url):
        r = cli("import-csv", str(f), "--user", "anna@example.de", "--phonebook", "Kunden")
        assert r.code == 75 and "another sync is running" in r.err
        assert cli("import-csv", str(f), "--user", "anna@example.de", "--phonebook", "Kunden",
                   "--dry-run").code == 0
    assert cli("import-csv", str(f), "--user", "anna@example.de", "--phonebook", "Kunden").code == 0
