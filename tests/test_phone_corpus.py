"""A corpus of numbers as people write them (DE/AT/CH/GB/FR/US/NO) -> expected E.164 or None.

The expectations never come from ``to_e164``: every expected E.164 is libphonenumber's own
formatting of a number it holds valid (its example numbers per type and region), and "None"
is either libphonenumber calling the number invalid or one of the documented rules
(docs/admin-guide.md, "Phone numbers"): local numbers without trunk prefix, letters that are
no vanity number. Each form is written the way address books hold them: brackets, slashes,
dots, labels, notes, extension words.
"""

from __future__ import annotations

import re

import phonenumbers as pn
import pytest

from ucware_contactsync.phone import caller_keys, to_e164

REGIONS = ["DE", "AT", "CH", "GB", "FR", "US", "NO"]
TYPES = [pn.PhoneNumberType.FIXED_LINE, pn.PhoneNumberType.MOBILE,
         pn.PhoneNumberType.TOLL_FREE]
EXT_WORDS = ["App. 17", "Apparat 17", "Nst. 17", "Nebenstelle 17", "Durchwahl 17", "DW 17",
             "Tel. 17", "ext. 17", "ext 17", "x17", "x 17", "#17", "Durchwahl: 17"]
NOTES = ["{} (privat)", "{} (geschäftlich)", "(Zentrale) {}", "Tel.: {}", "Mobil: {}",
         "{} [Büro]", "Fon {}", "{} privat"]


def _e164(number: pn.PhoneNumber) -> str:
    return pn.format_number(number, pn.PhoneNumberFormat.E164)


def _truth(text: str, region: str) -> str | None:
    """libphonenumber's verdict for an unambiguous (international) text."""
    try:
        number = pn.parse(text, region)
    except pn.NumberParseException:
        return None
    return _e164(number) if pn.is_valid_number(number) else None


def _examples() -> list[tuple[str, pn.PhoneNumber]]:
    out = []
    for region in REGIONS:
        for kind in TYPES:
            number = pn.example_number_for_type(region, kind)
            if number is not None and pn.is_valid_number(number):
                out.append((region, number))
    return out


def _has_trunk_prefix(region: str) -> bool:
    meta = pn.PhoneMetadata.metadata_for_region(region)
    return bool(meta.national_prefix) and meta.country_code != 1


def _corpus() -> list[tuple[str, str, str, str | None]]:
    """(written, region, area_code, expected)."""
    rows: list[tuple[str, str, str, str | None]] = []
    for region, number in _examples():
        e164 = _e164(number)
        cc = str(number.country_code)
        nsn = pn.national_significant_number(number)
        national = pn.format_number(number, pn.PhoneNumberFormat.NATIONAL)
        intl = pn.format_number(number, pn.PhoneNumberFormat.INTERNATIONAL)
        idd = "011" if cc == "1" else "00"
        rows += [
            (national, region, "", e164),
            (intl, region, "", e164),
            (e164, region, "", e164),
            (f"{idd} {cc} {nsn}", region, "", e164),
            (intl, "DE" if region != "DE" else "AT", "", e164),  # read elsewhere
            (f"{idd}{cc}-{nsn}", region, "", e164),
            (national.replace(" ", "."), region, "", e164),
            (re.sub(r"[^\d]", "", national), region, "", e164),
        ]
        rows += [(f"{national} {w}", region, "", e164) for w in EXT_WORDS]
        rows += [(n.format(national), region, "", e164) for n in NOTES]
        if _has_trunk_prefix(region) and national.startswith("0"):
            digits = re.sub(r"\D", "", national)
            first, _, rest = national.partition(" ")
            rows += [
                (f"{first}/{rest}", region, "", e164),
                (f"{first} / {rest}", region, "", e164),
                (f"({first}) {rest}", region, "", e164),
                (f"+{cc} (0){nsn}", region, "", e164),
                (f"+{cc} (0) {rest}" if first == "0" else f"+{cc} ({first}) {rest}", region,
                 "", e164 if first != "0" else _truth(f"+{cc} {rest}", region)),
                # Rule 2: no trunk prefix and no "+" -> a local number of an unknown area.
                (digits[1:], region, "", None),
                (f"{digits[1:4]} {digits[4:]}", region, "", None),
            ]
        elif region in ("US", "NO"):
            rows.append((nsn, region, "", e164))  # no trunk prefix: libphonenumber decides
        # Rule 1: a cut-off number is no caller-ID when libphonenumber says invalid.
        for cut in (2, 4):
            short = f"+{cc} {nsn[:-cut]}"
            rows.append((short, region, "", _truth(short, region)))
    rows += _area_code_rows() + _din_rows() + _vanity_rows() + _literal_rows()
    return rows


def _area_code_rows() -> list[tuple[str, str, str, str | None]]:
    """Local numbers with the key ``area_code``: national = trunk + area code + local part."""
    rows = []
    for region in ("DE", "AT", "CH", "GB", "FR"):
        number = pn.example_number_for_type(region, pn.PhoneNumberType.FIXED_LINE)
        nsn = pn.national_significant_number(number)
        n = pn.length_of_geographical_area_code(number)
        if not n:
            continue
        area, local = nsn[:n], nsn[n:]
        expected = _e164(number)
        rows += [(local, region, area, expected),
                 (f"{local[:3]} {local[3:]}", region, area, expected),
                 (f"{local} (privat)", region, area, expected),
                 (local, region, "", None)]
    return rows


def _din_rows() -> list[tuple[str, str, str, str | None]]:
    """DIN 5008 direct dial: valid base + "-NN" is the base's E.164 plus the digits, when the
    whole stays a possible number of the country (not in the fixed-length NANP)."""
    rows = []
    for region in ("DE", "AT", "US"):
        base = pn.example_number_for_type(region, pn.PhoneNumberType.FIXED_LINE)
        national = pn.format_number(base, pn.PhoneNumberFormat.NATIONAL)
        for suffix in ("0", "17", "230"):
            full = pn.parse(f"+{base.country_code}{pn.national_significant_number(base)}"
                            f"{suffix}", None)
            expected = (_e164(full) if pn.is_valid_number(full) or pn.is_possible_number(full)
                        else None)
            rows.append((f"{national}-{suffix}", region, "", expected))
            rows.append((f"{national} - {suffix}", region, "", expected))
    return rows


def _vanity_rows() -> list[tuple[str, str, str, str | None]]:
    rows = []
    for text, region in [("1-800-FLOWERS", "US"), ("+1 800 FLOWERS", "DE"),
                         ("1-800-GOT-JUNK", "US"), ("+1 (800) MY-APPLE", "DE"),
                         ("0800 FLOWERS", "DE"), ("+44 800 FLOWERS", "GB")]:
        digits = pn.convert_alpha_characters_in_number(text)
        rows.append((text, region, "", _truth(digits, region)))
    # Lower-case words are notes or typos, never keypad letters.
    rows += [("1-800-flowers", "US", "", None), ("089 hallo 123", "DE", "", None)]
    return rows


def _literal_rows() -> list[tuple[str, str, str, str | None]]:
    """The cases named in the issue and the admin guide, checked against libphonenumber."""
    return [
        ("+1-555-0123", "DE", "", None),
        ("+49 89 1", "DE", "", None),
        ("91551000", "DE", "", None),
        ("91551000", "NO", "", _truth("+47 91551000", "NO")),
        ("5625550199", "DE", "", None),
        ("5625550199", "US", "", _truth("+1 562 555 0199", "US")),
        ("n/a", "DE", "", None),
        ("123", "DE", "", None),
        ("110", "DE", "", None),
        ("", "DE", "", None),
        ("089 / 12 34 56 App. 17", "DE", "", _truth("+49 89 123456", "DE")),
        ("0 89 / 12 34 56", "DE", "", _truth("+49 89 123456", "DE")),
        ("+49 (0) 89 / 12 34 56 - 0", "DE", "", _truth("+49 89 1234560", "DE")),
        ("0043 1 234 56 78", "DE", "", _truth("+43 1 2345678", "AT")),
        ("020 7946 0958", "GB", "", _truth("+44 20 7946 0958", "GB")),
        ("7946 0958", "GB", "20", _truth("+44 20 7946 0958", "GB")),
        ("7946 0958", "GB", "", None),
        ("01 42 68 53 00", "FR", "", _truth("+33 1 42 68 53 00", "FR")),
        ("42 68 53 00", "FR", "", None),
        ("(212) 555-0100", "US", "", _truth("+1 212 555 0100", "US")),
        ("212.555.0100 ext 12", "US", "", _truth("+1 212 555 0100", "US")),
        ("22 12 34 56", "NO", "", _truth("+47 22 12 34 56", "NO")),
    ]


CORPUS = _corpus()


def test_corpus_is_large_and_its_truth_is_libphonenumbers() -> None:
    assert len(CORPUS) >= 300
    assert {r[1] for r in CORPUS} >= set(REGIONS)
    for written, _region, _, expected in CORPUS:
        if expected is not None:  # every expected E.164 is valid to libphonenumber or DIN
            number = pn.parse(expected, None)
            assert pn.is_valid_number(number) or pn.is_possible_number(number), written
    assert sum(1 for r in CORPUS if r[3] is None) >= 40  # the "none" side is covered too


@pytest.mark.parametrize(("written", "region", "area_code", "expected"), CORPUS)
def test_corpus(written: str, region: str, area_code: str, expected: str | None) -> None:
    assert to_e164(written, region, area_code) == expected


@pytest.mark.parametrize(("region", "number"), _examples())
def test_a_caller_matches_whatever_format_it_arrives_in(region: str, number) -> None:
    """+cc…, 00cc…, cc… (trunk without plus) and national 0… give the same first key."""
    e164 = _e164(number)
    cc, nsn = str(number.country_code), pn.national_significant_number(number)
    forms = [e164, f"+{cc} {nsn}", f"{cc}{nsn}",
             pn.format_number(number, pn.PhoneNumberFormat.NATIONAL)]
    if cc != "1":
        forms.append(f"00{cc}{nsn}")
    for caller in forms:
        exact, _ = caller_keys(caller, region)
        assert exact and exact[0] == e164, caller
