"""Phone numbers: kept as written, plus E.164 for caller-ID lookup.

Rules (documented in docs/admin-guide.md, "Phone numbers"):

* Numbers are parsed in ``default_region`` (key ``default_region``, default DE), so
  ``089 123456``, ``0049 89 123456``, ``+49 (0)89 123456`` and ``(089) 12 34 56`` all give
  ``+4989123456``.
* An E.164 is stored only for a number libphonenumber holds *valid*. A number that is merely
  "possible" (``+1-555-0123``, ``+49 89 1``) is no caller-ID and gets none.
* A direct-dial suffix written the German way (DIN 5008), ``+49 89 12345-0`` or
  ``030 1234-567``, is part of the number: a PBX with direct inward dialling presents the
  base number plus extension as caller-ID. It counts when the base is valid.
* A number written with neither ``+``/``00`` nor the trunk prefix (``0``) in a country that
  has one (DE, AT, CH, FR, GB, NL, ...) is a *local* number of an unknown area: ``91551000``
  in a Norwegian contact is not ``+4991551000``. It gets an E.164 only when the key
  ``area_code`` names the site's area (``89``: ``123456`` -> ``+4989123456``). In regions
  without a trunk prefix (NANP, NO, IT, ...) libphonenumber decides.
* Extension words (``App.``, ``Apparat``, ``Nst.``, ``Nebenstelle``, ``Durchwahl``, ``DW``,
  ``Tel.``, ``ext``, ``x``, ``#``) mark an extension that is not part of the E.164 (the main
  number is stored); notes in brackets (``(privat)``) and labels before or after the number
  (``Tel.:``, ``mobil``) are ignored. Letters become keypad digits only in a vanity number
  written in capitals (``1-800-FLOWERS``), and only if the result is valid.

``to_e164`` is a pure function of ``(written, region, area_code)`` and cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat

_HAS_DIGIT = re.compile(r"\d")
_LETTER = r"[^\W\d_]"
# "(privat)", "[Büro]": a bracket group with a letter in it is a note, "(0)"/"(089)" are not.
_NOTE = re.compile(rf"[(\[][^()\[\]]*{_LETTER}[^()\[\]]*[)\]]")
# Everything before the first digit, "+" or "(" is a label ("Tel.:", "mobil", "Fax -").
_LABEL = re.compile(r"^[^\d+(]*")
_EXT = re.compile(
    rf"\s*[,;/]?\s*(?<!{_LETTER})(?:durchwahl|dw|app|apparat|nst|nebenstelle|tel|ext|extn"
    rf"|extension|x|#)(?!{_LETTER})\s*[.:]?\s*-?\s*(\d+)\s*$",
    re.IGNORECASE,
)
# Trailing words with a small letter are notes ("089 123456 privat"); capitals may be vanity.
_TRAILING_NOTE = re.compile(rf"(?:\s+[-–]?\s*{_LETTER}*[a-zß]{_LETTER}*\.?)+\s*$")
_VANITY = re.compile(r"^\+?[\d\s\-./()]*\d[\d\s\-./()]*[A-Z][A-Z\d\s\-.]*$")
# DIN 5008 direct dial: "<base>-<1..5 digits>" at the end.
_DIN = re.compile(r"^(.*\d)\s*-\s*(\d{1,5})$")
# The shape of nearly every stored number ("+49 89 1234567", "(089) 12345-0"): no letter,
# "#", "," or label, so none of the _strip patterns can match and _strip may skip them.
_PLAIN = re.compile(r"[+(0-9][0-9 ()\-/.]*")
_NOT_ASCII_DIGIT = re.compile(r"[^0-9]")


def is_region(code: str) -> bool:
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def clean_area_code(value: str) -> str:
    """The digits of an area code as admins write it (``089``, ``(0)89``, ``89``) without the
    trunk prefix; ValueError for anything else."""
    digits = re.sub(r"[\s()\-/]", "", value)
    if not digits.isdigit() or not 1 <= len(digits.lstrip("0")) <= 6:
        raise ValueError("must be the area code in digits, e.g. 89 or 030")
    return digits.lstrip("0")


def _strip(text: str) -> str | None:
    """The dialable part of a written number (given stripped of surrounding blanks), or None
    when letters remain that are no vanity."""
    return text if _PLAIN.fullmatch(text) else _strip_words(text)


def _strip_words(text: str) -> str | None:
    text = _NOTE.sub(" ", text)
    text = _LABEL.sub("", text)
    text = _EXT.sub("", text)
    text = _TRAILING_NOTE.sub("", text).strip()
    if re.search(_LETTER, text) and not _VANITY.match(text):
        return None
    return text


@lru_cache(maxsize=1024)
def _prefixes(region: str) -> tuple[re.Pattern[str] | None, str] | None:
    """(international prefix, trunk prefix or "" where none counts) of a region, or None for a
    region libphonenumber does not know; looked up once per region, not once per number."""
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None:
        return None
    intl = re.compile(meta.international_prefix) if meta.international_prefix else None
    trunk = meta.national_prefix if meta.national_prefix and meta.country_code != 1 else ""
    return intl, trunk


def _kind(text: str, region: str) -> str:
    """How the number starts: "intl" (+/00), "national" (trunk 0), "local" or "free" (a region
    without trunk prefix, where libphonenumber decides)."""
    if text.lstrip("( ").startswith("+"):
        return "intl"
    prefixes = _prefixes(region)
    if prefixes is None:
        return "free"
    intl, trunk = prefixes
    # libphonenumber's digit normalising walks the text char by char; for ASCII (nearly every
    # number) dropping the non-digits gives the same.
    digits = (_NOT_ASCII_DIGIT.sub("", text) if text.isascii()
              else phonenumbers.normalize_digits_only(text))
    if intl is not None and intl.match(digits):
        return "intl"
    if not trunk:
        return "free"
    return "national" if digits.startswith(trunk) else "local"


def _parse(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    parsed.extension = None
    return parsed


def _valid_e164(text: str, region: str) -> str | None:
    parsed = _parse(text, region)
    if parsed is not None and phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    # Cheap checks first: the base is parsed only for a possible number with a DIN suffix.
    din = _DIN.match(text)
    if din is None or parsed is None or not phonenumbers.is_possible_number(parsed):
        return None  # is_possible: e.g. NANP has a fixed length, no room for a suffix
    base, suffix = _parse(din.group(1), region), din.group(2)
    if base is None or not phonenumbers.is_valid_number(base):
        return None
    return phonenumbers.format_number(base, PhoneNumberFormat.E164) + suffix


@lru_cache(maxsize=65536)
def to_e164(written: str, region: str = "DE", area_code: str = "") -> str | None:
    """E.164 for a number as a person wrote it, or None when it cannot be trusted.

    ``region``: where numbers without country code belong (key ``default_region``);
    ``area_code``: the site's area code without trunk prefix (key ``area_code``, may be "").
    """
    text = (written or "").strip()
    if not _HAS_DIGIT.search(text):
        return None
    region = region.upper()
    stripped = _strip(text)
    if not stripped or not _HAS_DIGIT.search(stripped):
        return None
    kind = _kind(stripped, region)
    if kind == "local":
        if not area_code:
            return None  # a local number of an unknown area: any E.164 would be a guess
        meta = PhoneMetadata.metadata_for_region(region)
        if meta is None:  # not a region libphonenumber knows: no rules to apply
            return None
        stripped = f"{meta.national_prefix}{area_code} {stripped}"
    return _valid_e164(stripped, region)


def caller_keys(caller: str, region: str = "DE", area_code: str = ""
                ) -> tuple[list[str], list[str]]:
    """(exact, switchboard) E.164 keys to search for an incoming number.

    A caller arrives as ``+49…``, ``0049…``, national ``0…`` or, from a trunk that drops the
    plus, ``49…``.
    A caller from extension 17 of a company stored as ``+49 89 12345-0`` arrives as
    ``+498912345 17``; the candidates ``base + "0"`` for 1 to 4 cut digits find the
    switchboard entry when no exact entry exists.
    """
    text = (caller or "").strip()
    found = [to_e164(text, region, area_code)]
    if text[:1].isdigit() and not text.startswith("0"):
        # Bare digits: in a region with a trunk prefix they cannot be a national number, so
        # E.164 without plus comes first; elsewhere (NANP, NO, IT) the national reading does.
        plus = to_e164("+" + text, region)
        if _kind(text, region.upper()) == "free":
            found.append(plus)
        else:
            found.insert(0, plus)
    exact = [k for k in dict.fromkeys(found) if k]
    board = [key[:-cut] + "0" for key in exact for cut in range(1, 5) if len(key) - cut > 6]
    return exact, [k for k in dict.fromkeys(board) if k not in exact]


def lookup_keys(caller: str, region: str = "DE", area_code: str = "") -> list[str]:
    """All keys of ``caller_keys``: exact first, then switchboard candidates."""
    exact, board = caller_keys(caller, region, area_code)
    return exact + board
