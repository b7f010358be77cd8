"""CSV reading and format recognition without a database: encodings, delimiters, mappings."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from ucware_contactsync.contact import NUMBER_TYPES
from ucware_contactsync.csvimport import formats as fm
from ucware_contactsync.csvimport import parse
from ucware_contactsync.csvimport.reader import ReadError, decode, rows, sniff_delimiter
from ucware_contactsync.errors import UsageError

DATA = Path(__file__).resolve().parent / "data" / "csv"


def _parsed(name: str, **kw: str):  # type: ignore[no-untyped-def]
    records, result, problems = parse(DATA / name, **kw)
    assert problems == []
    return {r.contact.name: r.contact for r in records}, result


def _nums(contact) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(n.type, n.number) for n in contact.numbers]


# --- encodings and delimiters ----------------------------------------------------------------

def test_decode_bom_utf8_cp1252_and_utf16_bom():
    assert decode(codecs.BOM_UTF8 + "a,ü\n".encode()) == ("a,ü\n", "utf-8-sig")
    assert decode("a,ü\n".encode()) == ("a,ü\n", "utf-8")
    assert decode("a,ü–\n".encode("cp1252")) == ("a,ü–\n", "cp1252")
    assert decode(codecs.BOM_UTF16_LE + "a\tü\n".encode("utf-16-le")) == ("a\tü\n", "utf-16")


@pytest.mark.parametrize(("data", "line"), [
    ("a,b\nc,d\n".encode("utf-16-le"), 1),  # UTF-16 without BOM
    (b"a,b\nc,d\ne,\x81\x8d\n", 3),  # neither UTF-8 nor cp1252
    (b"PK\x03\x04\x14\x00\x06\x00", 1),  # an .xlsx
    (b"a,b\nc,\x01d\n", 2),  # control character
])
def test_decode_refuses_binary_and_unknown_encodings_with_line(data: bytes, line: int):
    with pytest.raises(ReadError) as exc:
        decode(data)
    assert exc.value.line == line


@pytest.mark.parametrize(("text", "delim"), [
    ("a,b;c\n", ","), ("a;b;c\n", ";"), ("a\tb\tc\n", "\t"), ("a|b|c\n", "|"),
    ('"x;y",b,c\n', ","), ("single\n", ","),
])
def test_sniff_delimiter_uses_header_outside_quotes(text: str, delim: str):
    assert sniff_delimiter(text) == delim


def test_rows_report_physical_start_line_across_multiline_cells():
    text = 'h1,h2\n"a\nb\nc",x\n\nd,e\n'
    got = [(r.line, r.cells) for r in rows(text, ",")]
    assert got == [(1, ["h1", "h2"]), (2, ["a\nb\nc", "x"]), (5, []), (6, ["d", "e"])]


def test_unbalanced_quote_is_reported_at_the_row_where_it_opens():
    text = 'h1,h2\nok,1\n"broken,2\nnext,3\n'
    with pytest.raises(ReadError) as exc:
        list(rows(text, ","))
    assert exc.value.line == 3


# --- recognition -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "key"), [
    ("outlook_de_cp1252.csv", "outlook-de"), ("outlook_en.csv", "outlook-en"),
    ("outlook_com.csv", "outlook-com"), ("google_bom.csv", "google"),
    ("google_legacy.csv", "google-legacy"), ("own_v1.csv", "own"),
    ("excel_de_semicolon.csv", "own"),
])
def test_every_fixture_is_recognised(name: str, key: str):
    from ucware_contactsync.csvimport.reader import decode as dec

    text, _ = dec((DATA / name).read_bytes())
    header = next(rows(text, sniff_delimiter(text))).cells
    layout = fm.detect(header)
    assert layout is not None and layout.format.key == key


def test_outlook_phone_columns_cover_all_19_types_in_both_languages():
    assert sorted(fm.OUTLOOK_EN_PHONES.values()) == sorted(NUMBER_TYPES)
    assert sorted(fm.OUTLOOK_DE_PHONES.values()) == sorted(NUMBER_TYPES)
    assert fm.OUTLOOK_DE_PHONES["Mobiltelefon 2"] == "radio"


def test_unknown_header_names_formats_and_minimal_header(tmp_path: Path):
    f = tmp_path / "x.csv"
    f.write_text("Foo,Bar,Baz\n1,2,3\n", encoding="utf-8")
    with pytest.raises(UsageError) as exc:
        parse(f, user="a@b.de", phonebook="K")
    msg = str(exc.value)
    assert "line 1" in msg and "'Foo'" in msg
    assert "Outlook export (German)" in msg and "Google Contacts" in msg
    assert fm.OWN_MINIMAL_HEADER in msg


def test_own_layout_unknown_column_is_an_error(tmp_path: Path):
    f = tmp_path / "x.csv"
    f.write_text("owner,phonebook,display_name,mobil\na@b.de,K,X,1\n", encoding="utf-8")
    with pytest.raises(UsageError) as exc:
        parse(f)
    assert "unknown column 'mobil'" in str(exc.value) and "line 1" in str(exc.value)


# --- mappings --------------------------------------------------------------------------------

def test_german_outlook_cp1252_with_umlauts():
    by_name, result = _parsed("outlook_de_cp1252.csv", user="a@b.de", phonebook="Outlook")
    assert result.encoding == "cp1252" and result.format == "Outlook export (German)"
    joerg = by_name["Jörg Müller"]
    assert joerg.company == "Bäckerei Müller & Söhne" and joerg.job_title == "Meister"
    assert joerg.department == "Backstube" and joerg.emails == ("joerg@baeckerei-mueller.de",)
    assert joerg.categories == ("Lieferanten", "Geschäftlich")
    assert sorted(_nums(joerg)) == sorted([
        ("business", "+49 (89) 123456-0"), ("mobile", "0171 2345678"),
        ("radio", "0160 9876543"), ("business_fax", "089 123456-99")])
    aenne = by_name["Änne Özdemir"]
    assert ("home2", "030 7654321") in _nums(aenne) and ("tty", "030 555666") in _nums(aenne)
    werke = by_name["Stadtwerke Süd"]  # no person name: the company names the entry
    assert {t for t, _ in _nums(werke)} == {
        "company_main", "assistant", "car", "isdn", "telex", "pager", "other", "other_fax",
        "home_fax", "business2"}


def test_english_outlook_skips_exchange_x500_addresses():
    by_name, _ = _parsed("outlook_en.csv", user="a@b.de", phonebook="K")
    anna = by_name["Anna Maria Berg"]
    assert anna.emails == ("anna@contoso.de",) and ("radio", "+49 160 1111111") in _nums(anna)


def test_outlook_com():
    by_name, result = _parsed("outlook_com.csv", user="a@b.de", phonebook="K")
    assert result.format == "Outlook.com / new Outlook export"
    assert _nums(by_name["Chloé Martin"]) == [("business", "+33 1 23 45 67 89"),
                                              ("mobile", "+33 6 12 34 56 78")]


def test_google_bom_multiline_notes_and_multi_values():
    by_name, result = _parsed("google_bom.csv", user="a@b.de", phonebook="K")
    assert result.encoding == "utf-8-sig" and result.rows == 3
    lukas = by_name["Lukas Schär"]
    assert _nums(lukas) == [("business", "+41 31 928 09 60"), ("business2", "+41 31 928 09 61"),
                            ("mobile", "+41 79 264 88 66"), ("business_fax", "+41 31 928 09 99")]
    assert lukas.emails == ("lukas@example.ch", "l.schaer@example.ch")
    assert lukas.categories == ("Kunden",)  # "* myContacts" is every contact: dropped
    assert _nums(by_name["Mia Wong"]) == [("home", "0221 123456"), ("pager", "0221 999"),
                                          ("other", "0221 777")]  # custom label -> other
    assert _nums(by_name["Pizza Roma"]) == [("primary", "089 5555")]


def test_google_legacy():
    by_name, _ = _parsed("google_legacy.csv", user="a@b.de", phonebook="K")
    tom = by_name["Tom Becker"]
    assert _nums(tom) == [("mobile", "0176 1234567"), ("home_fax", "040 998877")]
    assert tom.company == "Becker IT" and tom.categories == ("Freunde",)


@pytest.mark.parametrize(("label", "kind"), [
    ("Mobile", "mobile"), ("* Work", "business"), ("Home", "home"), ("Work Fax", "business_fax"),
    ("Home Fax", "home_fax"), ("Pager", "pager"), ("Main", "primary"), ("Other", "other"),
    ("Boot", "other"), ("", "other"), ("Mobil", "mobile"),
])
def test_google_labels(label: str, kind: str):
    assert fm.google_type(label) == kind


def test_content_keys_disambiguate_duplicates_and_ids_win(tmp_path: Path):
    f = tmp_path / "x.csv"
    f.write_text("display_name,company,mobile\nHans  Meier,,1\nhans meier,,2\nHans Meier,X,3\n"
                 ",,0171 123\n", encoding="utf-8")
    records, _, problems = parse(f, user="a@b.de", phonebook="K")
    assert problems == []
    assert [r.contact.source_id for r in records] == [
        "csv:key:hans meier|", "csv:key:hans meier|#2", "csv:key:hans meier|x", "csv:num:0171123"]
    f.write_text("id,display_name\n7,A\n8,A\n7,B\n", encoding="utf-8")
    records, _, problems = parse(f, user="a@b.de", phonebook="K")
    assert [r.contact.source_id for r in records] == ["csv:id:7", "csv:id:8"]
    assert [(p.line, "appears twice" in p.message) for p in problems] == [(4, True)]
