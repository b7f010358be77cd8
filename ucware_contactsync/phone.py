"""Phone numbers: kept as written, plus E.164 for caller-ID lookup.

Rules (documented in docs/admin-guide.md, "Phone numbers"):

* Numbers are parsed in ``default_region`` (key ``default_region``, default DE), so
  ``089 123456``, ``0049 89 123456``, ``+49 (0)89 123456`` and ``(089) 12 34 56`` all give
  ``+4989123456``.
* A direct-dial suffix written the German way (DIN 5008), ``+49 89 12345-0`` or
  ``030 1234-567``, is part of the number: a PBX with direct inward dialling presents the
  base number plus extension as caller-ID, so the E.164 is ``+4989123450`` / ``+49301234567``.
* An extension marked with ``ext.``, ``x``, ``Durchwahl`` or ``DW`` is not dialable from
  outside; the E.164 is the main number and the written text keeps the extension.
* E.164 is stored only for numbers that are valid for their region, or that are written with
  an international prefix (``+``/``00``) and have a possible length. Internal extensions
  (``123``), junk (``n/a``) and numbers too short to be sure of get no E.164; they are kept
  as written and shown, but a caller-ID lookup cannot find them.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_EXT_WORDS = re.compile(r"\s*(?:,|;)?\s*(?:durchwahl|dw\.?|ext\.?|extension|x)\s*[:.]?\s*(\d+)\s*$",
                        re.IGNORECASE)
_HAS_DIGIT = re.compile(r"\d")


def is_region(code: str) -> bool:
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


@lru_cache(maxsize=65536)
def to_e164(written: str, region: str = "DE") -> str | None:
    """E.164 for a number as a person wrote it, or None when it cannot be trusted."""
    text = (written or "").strip()
    if not _HAS_DIGIT.search(text):
        return None
    text = _EXT_WORDS.sub("", text)  # main number only, see module doc
    try:
        parsed = phonenumbers.parse(text, region.upper())
    except NumberParseException:
        return None
    parsed.extension = None
    international = text.lstrip("(").startswith(("+", "00"))
    if phonenumbers.is_valid_number(parsed) or (
        international and phonenumbers.is_possible_number(parsed)
    ):
        return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    return None


def lookup_keys(caller: str, region: str = "DE") -> list[str]:
    """E.164 forms to search for an incoming number: exact, then switchboard candidates.

    A caller from extension 17 of a company stored as ``+49 89 12345-0`` arrives as
    ``+498912345 17``; the candidates ``base + "0"`` for 1 to 4 cut digits find the
    switchboard entry when no exact entry exists.
    """
    exact = to_e164(caller, region)
    if exact is None:
        # A caller-ID without region info may still be E.164 without the plus.
        digits = re.sub(r"\D", "", caller or "")
        if digits and len(digits) > 8:
            exact = to_e164("+" + digits, region)
    if exact is None:
        return []
    keys = [exact]
    for cut in range(1, 5):
        base = exact[:-cut]
        if len(base) > 6:
            keys.append(base + "0")
    return keys
