"""import-vcard through the command line: vCards as iPhone/macOS, Android/Google, Outlook and
Nextcloud write them (fixtures in tests/data/vcard); re-import changes nothing, hand entries
stay, a malformed file changes nothing, the phonebook belongs to the vCard import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "vcard"
USER = ("--user", "anna@contoso.de", "--phonebook", "Kontakte")

EXPECTED = {
    "outlook_21_cp1252.vcf": {"Jörg Müller": [
        ("business", "089 123456-0", "+49891234560"), ("home", "089 654321", "+4989654321"),
        ("mobile", "0171 2345678", "+491712345678"),
        ("business_fax", "089 123456-99", "+498912345699"),
        ("primary", "089 123456-10", "+498912345610"),
        ("company_main", "089 123456-0", "+49891234560"),
        ("assistant", "089 123456-11", "+498912345611")]},
    "android_21_qp.vcf": {"Änne Özdemir": [
        ("mobile", "+49 151 22334455", "+4915122334455"), ("home", "030 1234567", "+49301234567"),
        ("business", "+49 30 281444-0", "+49302814440"),
        ("business_fax", "+49 30 281444-99", "+493028144499")],
        "Pizzeria Da Mario": [("business", "089 / 44 55 66", "+4989445566")]},
    "apple_30.vcf": {"John Appleseed": [
        ("mobile", "+1 (408) 555-0123", "+14085550123"),
        ("mobile", "+1 408 555 0124", "+14085550124"),
        ("company_main", "+49 30 1234567", "+49301234567"),
        ("home_fax", "+49 89 7654321", "+49897654321"),
        ("primary", "+1 408 996 1010", "+14089961010")],
        "Jürgen Weiß": [("mobile", "+49 171 5556667", "+491715556667"),
                        ("home", "089 98 76 54", "+4989987654"),
                        ("primary", "+49 89 123456-0", "+49891234560")]},
    "google_30.vcf": {"Lukas Schär": [
        ("business", "+41 31 928 09 60", "+41319280960"),
        ("mobile", "+41 79 264 88 66", "+41792648866"),
        ("company_main", "+41 31 928 09 99", "+41319280999")]},
    "nextcloud_30.vcf": {"Anna Berg": [
        ("home", "089 123456", "+4989123456"), ("mobile", "0171 2345678", "+491712345678"),
        ("business", "+49 89 98765-17", "+49899876517")],
        "Jane Doe": [("business", "+1-212-555-0100 ext. 45", "+12125550100"),
                     ("mobile", "+1-212-555-0199", "+12125550199")]},
}


def _book(cli) -> dict:  # type: ignore[no-untyped-def]
    books = json.loads(cli("phonebook", "show", "--json").out)
    return next(b for b in books if b["name"] == "Kontakte")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vcards_of_each_writer_import_and_reimport_changes_nothing(cli, name):
    cli("users", "add", "anna@contoso.de")
    r = cli("import-vcard", str(DATA / name), *USER)
    assert r.code == 0, r.err
    book = _book(cli)
    assert book["source"] == "vcard"
    got = {e["display_name"]: [(n["type"], n["number"], n["e164"]) for n in e["numbers"]]
           for e in book["entries"]}
    assert got == EXPECTED[name]
    r = cli("import-vcard", str(DATA / name), *USER)
    assert r.code == 0 and "0 added, 0 updated, 0 removed" in r.out, r.out
    assert _book(cli) == book


def test_reimport_keeps_phonebook_current_and_hand_entries(cli, tmp_path):
    cli("users", "add", "anna@contoso.de")
    assert cli("import-vcard", str(DATA / "nextcloud_30.vcf"), *USER).code == 0
    r = cli("phonebook", "add", *USER, "--name", "Von Hand", "--number", "mobile:0170 1111111")
    assert r.code == 0, r.err
    # Anna's card (same UID) renamed and with a new number, Jane's card gone.
    text = (DATA / "nextcloud_30.vcf").read_text(encoding="utf-8")
    first = text.split("END:VCARD")[0] + "END:VCARD\r\n"
    changed = first.replace("FN:Anna Berg", "FN:Anna Berg-Huber").replace(
        "0171 2345678", "0171 9999999")
    path = tmp_path / "neu.vcf"
    path.write_text(changed, encoding="utf-8")
    r = cli("import-vcard", str(path), *USER, "--dry-run")
    assert r.code == 0 and "0 added, 1 updated, 1 removed" in r.out, r.out
    r = cli("import-vcard", str(path), *USER)
    assert r.code == 0 and "0 added, 1 updated, 1 removed" in r.out, r.out
    names = {e["display_name"]: e for e in _book(cli)["entries"]}
    assert set(names) == {"Anna Berg-Huber", "Von Hand"}
    assert names["Von Hand"]["source_id"] is None
    r = cli("lookup", "+491719999999", "--json")
    assert [h["display_name"] for h in json.loads(r.out)] == ["Anna Berg-Huber"]


@pytest.mark.parametrize(("content", "line", "words"), [
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ok\r\nTEL:089 1\r\nEND:VCARD\r\n"
     "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Broken\r\nTEL;TYPE=WORK 089 123\r\nEND:VCARD\r\n",
     9, "not a valid vCard line"),
    ("BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nur eine Notiz\r\nEND:VCARD\r\n", 1,
     "neither a name nor a phone number"),
    ("Vorname,Nachname\r\nMax,Muster\r\n", 1, "no BEGIN:VCARD"),
])
def test_malformed_file_changes_nothing(cli, tmp_path, content, line, words):
    cli("users", "add", "anna@contoso.de")
    assert cli("import-vcard", str(DATA / "google_30.vcf"), *USER).code == 0
    before = cli("phonebook", "show", "--json").out
    bad = tmp_path / "bad.vcf"
    bad.write_text(content, encoding="utf-8")
    r = cli("import-vcard", str(bad), *USER)
    assert r.code == 2 and "nothing was imported" in r.err, r.err
    assert f"line {line}: " in r.err and words in r.err, r.err
    assert "Traceback" not in r.err
    assert cli("phonebook", "show", "--json").out == before


def test_vcard_needs_user_and_phonebook_and_keeps_to_its_own_phonebooks(cli):
    cli("users", "add", "anna@contoso.de")
    r = cli("import-vcard", str(DATA / "google_30.vcf"), "--user", "anna@contoso.de")
    assert r.code == 2 and "--phonebook" in r.err
    csv = Path(__file__).resolve().parent / "data" / "csv" / "thunderbird_en.csv"
    assert cli("import-csv", str(csv), *USER).code == 0
    r = cli("import-vcard", str(DATA / "google_30.vcf"), *USER)
    assert r.code == 2 and "filled by CSV import; a vCard file cannot fill it" in r.err, r.err
    r = cli("import-csv", str(csv), "--user", "anna@contoso.de", "--phonebook", "Andere")
    assert r.code == 0
    assert cli("import-vcard", str(DATA / "google_30.vcf"), "--user", "anna@contoso.de",
               "--phonebook", "Karten").code == 0
    r = cli("import-csv", str(csv), "--user", "anna@contoso.de", "--phonebook", "Karten")
    assert r.code == 2 and "filled by vCard import; a CSV file cannot fill it" in r.err, r.err
