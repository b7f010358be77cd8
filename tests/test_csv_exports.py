"""Exports written by other programs (fixtures in tests/data/csv, header rows as the programs
write them): each is recognised as its own format and loses no number; headers damaged by a
wrong code page still map; columns of phone numbers that no format imports are named, and
``--strict`` refuses them; re-imports change nothing, a malformed file changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ucware_contactsync.csvimport import formats as fm
from ucware_contactsync.csvimport import parse

DATA = Path(__file__).resolve().parent / "data" / "csv"

JUERGEN_2016 = [("business", "089 123456-0"), ("home", "089 / 98 76 54"),
                ("home2", "0171 2345678 (privat)"), ("mobile", "0160 9876543")]
EXPORTS = [
    # file, format key, encoding, {name: numbers}
    ("outlook_en.csv", "outlook-en", "utf-8", {"Anna Maria Berg": [
        ("business", "+49 89 1234560"), ("mobile", "+49 171 1234567"),
        ("radio", "+49 160 1111111")]}),
    ("outlook_en_2003.csv", "outlook-en", "cp1252", {
        "Wolfgang Smith": [("business", "+49 30 281444-0"), ("home", "030 1234567"),
                           ("mobile", "+49 171 5556667")],
        "Zoë Doe": [("business", "+1 (212) 555-0100 x45"), ("home2", "+44 20 7946 0958")]}),
    ("outlook_com.csv", "outlook-com", "utf-8", {"Chloé Martin": [
        ("business", "+33 1 23 45 67 89"), ("mobile", "+33 6 12 34 56 78")]}),
    ("outlook_de_cp1252.csv", "outlook-de", "cp1252", {"Änne Özdemir": [
        ("callback", "0221 998877"), ("home", "030 1234567"), ("home2", "030 7654321"),
        ("primary", "+41 31 928 09 60"), ("tty", "030 555666")]}),
    ("outlook_de_2016_cp1252.csv", "outlook-de", "cp1252", {
        "Jürgen Weiß": JUERGEN_2016,
        "Anna Berg": [("home", "+43 1 234 56 78"), ("other", "089 123456 App. 17")]}),
    ("outlook_de_2016_utf8bom.csv", "outlook-de", "utf-8-sig", {"Jürgen Weiß": JUERGEN_2016}),
    ("outlook_de_mojibake.csv", "outlook-de", "utf-8", {"Jörg Müller": [
        ("business", "089 123456-99"), ("home", "089 555666")]}),
    ("outlook_de_replaced.csv", "outlook-de", "utf-8", {"Jörg Müller": [
        ("business", "089 123456-99"), ("home", "089 555666")]}),
    ("thunderbird_en.csv", "thunderbird-en", "utf-8", {
        "Kari Nordmann": [("business", "+47 22 12 34 56"), ("home", "+47 21 23 45 67"),
                          ("mobile", "+47 412 34 567")],
        "Support": [("business", "+44 20 7946 0000"), ("business_fax", "+44 20 7946 0001")]}),
    ("thunderbird_de.csv", "thunderbird-de", "utf-8", {"Jürgen Weiß": [
        ("business", "089 123456-0"), ("home", "089 987654"), ("mobile", "0171 2345678")]}),
    ("apple_en.csv", "apple-en", "utf-8", {"John Appleseed": [
        ("mobile", "+1 (408) 555-0123"), ("business", "+1 408-996-1010")]}),
    ("apple_de.csv", "apple-de", "utf-8", {"Hans Müller": [
        ("mobile", "+49 170 1234567"), ("home", "030 7654321"),
        ("business", "+49 30 1234567")]}),
    ("name_and_company_de.csv", "outlook-de", "cp1252", {
        "Max Mustermann": [("business", "089 123456-0"), ("mobile", "0171 1234567")],
        "Zentrale Nord": [("business", "040 1234567")]}),
]


@pytest.mark.parametrize(("name", "key", "encoding", "expected"), EXPORTS,
                         ids=[e[0] for e in EXPORTS])
def test_export_is_its_own_format_and_keeps_every_number(name, key, encoding, expected):
    records, result, problems = parse(DATA / name, user="a@contoso.de", phonebook="Kunden")
    assert problems == [] and result.unmapped_numbers == []
    fmt = next(f for f in fm.FORMATS if f.key == key)
    assert (result.format, result.encoding) == (fmt.title, encoding)
    got = {r.contact.name: [(n.type, n.number) for n in r.contact.numbers] for r in records}
    for person, numbers in expected.items():
        assert got[person] == numbers


@pytest.mark.parametrize("header", [
    # every spelling of the German home/business columns across Outlook versions and exporters
    "Telefon privat", "Telefon (privat)", "Telefon (Privat)", "Telefon 2 (privat)",
    "Telefon (privat 2)", "Telefon privat 2", "Telefon geschäftlich", "Telefon (geschäftlich)",
    "Telefon 2 (geschäftlich)", "Telefon gesch\ufffdftlich", "Telefon geschÃ¤ftlich",
    "Telefon gesch?ftlich", "TELEFON GESCHÄFTLICH",
])
def test_german_phone_header_spellings_map(header):
    layout = fm.detect(["Vorname", "Nachname", "Firma", header])
    assert layout is not None and layout.format is fm.OUTLOOK_DE
    kinds = [t for i, t in layout.targets if i == 3]
    assert kinds and kinds[0][0] == fm.NUMBER
    assert kinds[0][1] in ("home", "home2", "business", "business2")


def test_person_name_beats_company(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Name,Given Name,Family Name,Organization 1 - Name,Phone 1 - Value\n"
                    "Contoso GmbH,Eva,Schmidt,Contoso GmbH,030 2222222\n"
                    "Contoso GmbH,,,Contoso GmbH,030 2222200\n", encoding="utf-8")
    records, _, problems = parse(path, user="a@contoso.de", phonebook="Kunden")
    assert problems == []
    assert [r.contact.name for r in records] == ["Eva Schmidt", "Contoso GmbH"]
    assert records[0].contact.company == "Contoso GmbH"


def test_unmapped_number_column_is_named_and_strict_refuses(cli, tmp_path):
    cli("users", "add", "anna@contoso.de")
    path = DATA / "outlook_en_extra_phone_column.csv"
    r = cli("import-csv", str(path), "--user", "anna@contoso.de", "--phonebook", "Kunden")
    assert r.code == 0, r.err
    assert "'Direct Line' holds phone numbers but was not imported" in r.err
    assert "Birthday" not in r.err and "Notes" not in r.err  # dates and text are no numbers
    books = json.loads(cli("phonebook", "show", "--json").out)
    assert len(books[0]["entries"]) == 2
    cli("users", "add", "ben@contoso.de")
    r = cli("import-csv", str(path), "--user", "ben@contoso.de", "--phonebook", "Kunden",
            "--strict")
    assert r.code == 2
    assert "nothing was imported" in r.err and "'Direct Line' holds phone numbers" in r.err
    assert [b["owner"] for b in json.loads(cli("phonebook", "show", "--json").out)] == [
        "anna@contoso.de"]


@pytest.mark.parametrize("name", ["outlook_de_2016_cp1252.csv", "thunderbird_en.csv",
                                  "apple_de.csv", "outlook_de_replaced.csv"])
def test_reimport_changes_nothing_and_malformed_file_changes_nothing(cli, tmp_path, name):
    cli("users", "add", "anna@contoso.de")
    args = ("--user", "anna@contoso.de", "--phonebook", "Kunden")
    r = cli("import-csv", str(DATA / name), *args)
    assert r.code == 0, r.err
    before = cli("phonebook", "show", "--json").out
    r = cli("import-csv", str(DATA / name), *args)
    assert r.code == 0 and "0 added, 0 updated, 0 removed" in r.out, r.out
    # The same export with a stray quote in the last row: refused whole, nothing written.
    raw = (DATA / name).read_bytes().rstrip(b"\r\n")
    broken = tmp_path / name
    broken.write_bytes(raw + b'\r\n"Neu","Kunde,"0171 1\r\n')
    r = cli("import-csv", str(broken), *args)
    assert r.code == 2 and "Traceback" not in r.err, r.err
    assert cli("phonebook", "show", "--json").out == before
