"""CSV formats: recognise one from its header row and map its columns onto our contact fields.

Supported (see docs/csv-format.md): our own layout; classic Outlook exports in English and
German (every version's spelling); Outlook.com / new Outlook; Google Contacts (current and
legacy export); Thunderbird (English, German); Apple Contacts CSV (English, German).
Recognition counts how many header cells each format knows and takes the best; files re-saved
from Excel with some columns deleted or added are still recognised. A header cell is matched
exactly, then repaired (UTF-8 read as Windows-1252: ``GeschÃ¤ftlich``), then loosely: case,
brackets, word order and a character lost to a wrong code page (``Telefon gesch�ftlich``) do
not matter. Only our own layout is strict about unknown columns, because there a misspelt
column (``mobil``) would silently lose data; in the other formats an unmapped column whose
values look like phone numbers is named in the summary (``--strict``: refused).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ..contact import NUMBER_TYPES
from . import headers as hd

# Own-layout columns besides the 19 number types.
OWN_COLUMNS: tuple[str, ...] = (
    "owner", "phonebook", "id", "display_name", "given_name", "surname", "company",
    "department", "job_title", "emails", "categories",
)
OWN_MINIMAL_HEADER = "owner,phonebook,display_name,company,business,mobile"
MULTI_SEPARATOR = " ::: "  # Google's separator of several values in one cell
_SPLIT = re.compile(r"\s*(?:;| ::: )\s*")

# Target kinds of a column.
FIELD = "field"  # a text field of Contact (arg: field name) or middle/suffix/file_as
NUMBER = "number"  # a phone number column (arg: number type)
EMAIL = "email"  # one or several e-mail addresses
CATEGORY = "category"  # categories / labels
OWNER, BOOK, ID = "owner", "phonebook", "id"
PHONE_LABEL, PHONE_VALUE = "phone_label", "phone_value"  # Google pairs (arg: pair number)

Target = tuple[str, str]


def norm(header: str) -> str:
    """Header cells compare case-insensitively, ignoring BOM remnants and extra blanks."""
    return " ".join(unicodedata.normalize("NFC", header).replace("\ufeff", "").split()).casefold()


_MOJIBAKE = re.compile("[ÃÂâ][\u0080-\u00ff\u0152-\u0192\u02c6-\u2122]")
_NON_ASCII = re.compile("[^\x00-\x7f]+")
_TOKENS = re.compile(r"[\s():,]+")


def repair(text: str) -> str:
    """UTF-8 bytes that were read as Windows-1252 (``GeschÃ¤ftlich``) back to text."""
    if not _MOJIBAKE.search(text):
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return text


@lru_cache(maxsize=4096)
def loose(header: str) -> str:
    """The loose key of a header cell: repaired, every run of non-ASCII letters (a kept, a
    replaced ``�`` or a ``?`` umlaut) as ``?``, brackets dropped, words sorted."""
    text = _NON_ASCII.sub("?", repair(norm(header))).replace("?", "\x00")
    text = re.sub("\x00+", "?", text)
    return " ".join(sorted(t for t in _TOKENS.split(text) if t))


# --- Outlook -------------------------------------------------------------------------------

OUTLOOK_EN_PHONES = {
    "Assistant's Phone": "assistant", "Business Fax": "business_fax",
    "Business Phone": "business", "Business Phone 2": "business2", "Callback": "callback",
    "Car Phone": "car", "Company Main Phone": "company_main", "Home Fax": "home_fax",
    "Home Phone": "home", "Home Phone 2": "home2", "ISDN": "isdn", "Mobile Phone": "mobile",
    "Other Fax": "other_fax", "Other Phone": "other", "Pager": "pager",
    "Primary Phone": "primary", "Radio Phone": "radio", "TTY/TDD Phone": "tty", "Telex": "telex",
}
# German Outlook writes the RadioPhone property as "Mobiltelefon 2" (same column position as
# English "Radio Phone"); mapping it to ``radio`` keeps it the same field as the EWS/Graph sync.
OUTLOOK_DE_PHONES = {
    "Telefon Assistent": "assistant", "Fax geschäftlich": "business_fax",
    "Telefon geschäftlich": "business", "Telefon geschäftlich 2": "business2",
    "Rückmeldung": "callback", "Autotelefon": "car", "Telefon Firma": "company_main",
    "Fax privat": "home_fax", "Telefon privat": "home", "Telefon privat 2": "home2",
    "ISDN": "isdn", "Mobiltelefon": "mobile", "Weiteres Fax": "other_fax",
    "Weiteres Telefon": "other", "Pager": "pager", "Haupttelefon": "primary",
    "Mobiltelefon 2": "radio", "Telefon für Hörbehinderte": "tty", "Telex": "telex",
}
OUTLOOK_EN_FIELDS: dict[str, Target] = {
    "First Name": (FIELD, "given_name"), "Middle Name": (FIELD, "middle"),
    "Last Name": (FIELD, "surname"), "Suffix": (FIELD, "suffix"),
    "Company": (FIELD, "company"), "Department": (FIELD, "department"),
    "Job Title": (FIELD, "job_title"), "Categories": (CATEGORY, ""),
    "E-mail Address": (EMAIL, ""), "E-mail 2 Address": (EMAIL, ""),
    "E-mail 3 Address": (EMAIL, ""),
}
OUTLOOK_DE_FIELDS: dict[str, Target] = {
    "Vorname": (FIELD, "given_name"), "Weitere Vornamen": (FIELD, "middle"),
    "Nachname": (FIELD, "surname"), "Suffix": (FIELD, "suffix"),
    "Firma": (FIELD, "company"), "Abteilung": (FIELD, "department"),
    "Position": (FIELD, "job_title"), "Kategorien": (CATEGORY, ""),
    "E-Mail-Adresse": (EMAIL, ""), "E-Mail 2: Adresse": (EMAIL, ""),
    "E-Mail 3: Adresse": (EMAIL, ""),
}
# Columns we recognise but do not import (addresses, notes, ...): they count for recognition.
OUTLOOK_EN_OTHER = """Title,Business Street,Business Street 2,Business Street 3,Business City,
Business State,Business Postal Code,Business Country/Region,Business Country,Home Street,
Home Street 2,Home Street 3,Home City,Home State,Home Postal Code,Home Country/Region,
Home Country,Other Street,Other Street 2,Other Street 3,Other City,Other State,
Other Postal Code,Other Country/Region,Other Country,Account,Anniversary,Assistant's Name,
Billing Information,Birthday,Business Address PO Box,Children,Directory Server,E-mail Type,
E-mail Display Name,E-mail 2 Type,E-mail 2 Display Name,E-mail 3 Type,E-mail 3 Display Name,
Gender,Government ID Number,Hobby,Home Address PO Box,Initials,Internet Free Busy,Keywords,
Language,Location,Manager's Name,Mileage,Notes,Office Location,Organizational ID Number,
Other Address PO Box,Priority,Private,Profession,Referred By,Sensitivity,Spouse,User 1,
User 2,User 3,User 4,Web Page"""
# Outlook.com / new Outlook: same names as classic English, plus these.
OUTLOOK_COM_ONLY = ("Nickname,Given Yomi,Surname Yomi,IMAddress,Company Yomi,Personal Web Page,"
                    "Schools")
OUTLOOK_DE_OTHER = """Anrede,Straße geschäftlich,Straße geschäftlich 2,Straße geschäftlich 3,
Ort geschäftlich,Region geschäftlich,Postleitzahl geschäftlich,Land/Region geschäftlich,
Straße privat,Straße privat 2,Straße privat 3,Ort privat,Bundesland/Kanton privat,
Postleitzahl privat,Land/Region privat,Weitere Straße,Weitere Straße 2,Weitere Straße 3,
Weiterer Ort,Weiteres/r Bundesland/Kanton,Weitere Postleitzahl,Weiteres/e Land/Region,
Abrechnungsinformation,Benutzer 1,Benutzer 2,Benutzer 3,Benutzer 4,Beruf,Büro,E-Mail-Typ,
E-Mail: Angezeigter Name,E-Mail 2: Typ,E-Mail 2: Angezeigter Name,E-Mail 3: Typ,
E-Mail 3: Angezeigter Name,Empfohlen von,Geburtstag,Geschlecht,Hobby,Initialen,
Internet-Frei/Gebucht,Jahrestag,Kinder,Konto,Name Assistent,Name des/der Vorgesetzten,
Notizen,Organisationsnr.,Ort,Partner,Postfach geschäftlich,Postfach privat,Priorität,Privat,
Regierungsnr.,Reisekilometer,Sprache,Stichwörter,Vertraulichkeit,Verzeichnisserver,Webseite,
Weiteres Postfach"""

# --- Google ----------------------------------------------------------------------------------

GOOGLE_FIELDS: dict[str, Target] = {
    "First Name": (FIELD, "given_name"), "Middle Name": (FIELD, "middle"),
    "Last Name": (FIELD, "surname"), "Name Suffix": (FIELD, "suffix"),
    "File As": (FIELD, "file_as"), "Organization Name": (FIELD, "company"),
    "Organization Title": (FIELD, "job_title"),
    "Organization Department": (FIELD, "department"), "Labels": (CATEGORY, ""),
}
GOOGLE_OTHER = """Phonetic First Name,Phonetic Middle Name,Phonetic Last Name,Name Prefix,
Nickname,Birthday,Notes,Photo"""
GOOGLE_LEGACY_FIELDS: dict[str, Target] = {
    "Name": (FIELD, "display_name"), "Given Name": (FIELD, "given_name"),
    "Additional Name": (FIELD, "middle"), "Family Name": (FIELD, "surname"),
    "Name Suffix": (FIELD, "suffix"), "File As": (FIELD, "file_as"),
    "Organization 1 - Name": (FIELD, "company"), "Organization 1 - Title": (FIELD, "job_title"),
    "Organization 1 - Department": (FIELD, "department"),
    "Group Membership": (CATEGORY, ""),
}
GOOGLE_LEGACY_OTHER = """Yomi Name,Given Name Yomi,Additional Name Yomi,Family Name Yomi,
Name Prefix,Initials,Nickname,Short Name,Maiden Name,Birthday,Gender,Location,
Billing Information,Directory Server,Mileage,Occupation,Hobby,Sensitivity,Priority,Subject,
Notes,Language,Photo"""
# "Phone 3 - Value", "E-mail 1 - Label", "Address 2 - City", "Custom Field 1 - Type", ...
_GOOGLE_PAIR = re.compile(r"^(.+?) (\d+) - (.+)$")

# Google phone labels (lower case, German UI labels too) -> our types; anything else: other.
GOOGLE_PHONE_LABELS = {
    "mobile": "mobile", "cell": "mobile", "work mobile": "mobile", "mobil": "mobile",
    "handy": "mobile", "work": "business", "arbeit": "business", "geschäftlich": "business",
    "home": "home", "privat": "home", "zuhause": "home", "work fax": "business_fax",
    "fax (arbeit)": "business_fax", "fax geschäftlich": "business_fax", "home fax": "home_fax",
    "fax (privat)": "home_fax", "fax privat": "home_fax", "other fax": "other_fax",
    "fax": "other_fax", "pager": "pager", "work pager": "pager", "main": "primary",
    "hauptnummer": "primary", "company main": "company_main", "assistant": "assistant",
    "callback": "callback", "car": "car", "isdn": "isdn", "radio": "radio",
    "telex": "telex", "tty/tdd": "tty", "tty_tdd": "tty", "other": "other",
    "sonstige": "other", "google voice": "other", "zentrale": "company_main",
    "switchboard": "company_main",
}
# A second number of the same kind goes into the "2" type while that is free.
SECOND_TYPE = {"business": "business2", "home": "home2"}


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.replace("\n", "").split(",") if n.strip()]


@dataclass(frozen=True)
class Format:
    key: str
    title: str
    columns: dict[str, Target]  # normalised header -> target
    known: frozenset[str]  # normalised headers that belong to the format (mapped or not)
    google_pairs: bool = False  # "Phone N - Label/Type" + "Phone N - Value" columns
    strict: bool = False  # unknown columns are an error (own layout only)
    loose_columns: dict[str, Target] = field(default_factory=dict)  # loose key -> target
    loose_known: frozenset[str] = frozenset()

    def target(self, header: str) -> Target | None:
        """The target of a normalised header cell: exact, else (foreign formats) loose."""
        found = self.columns.get(header)
        if found is None and not self.strict:
            found = self.loose_columns.get(loose(header))
        if found is None and self.google_pairs:
            found = _google_target(header)
        return found

    def knows(self, header: str) -> bool:
        if header in self.known:
            return True
        if self.google_pairs and _GOOGLE_PAIR.match(header) is not None:
            return True
        return not self.strict and loose(header) in self.loose_known


def _fmt(key: str, title: str, columns: dict[str, Target], other: Sequence[str] = (),
         **kw: bool) -> Format:
    cols = {norm(k): v for k, v in columns.items()}
    known = frozenset(cols) | {norm(o) for o in other}
    loose_cols: dict[str, Target] = {}
    for k, v in cols.items():
        loose_cols.setdefault(loose(k), v)
    return Format(key, title, cols, known, loose_columns=loose_cols,
                  loose_known=frozenset(loose(k) for k in known), **kw)


def _foreign(fields: dict[str, Target]) -> dict[str, Target]:
    """Every foreign format also takes a whole-name column as the display name."""
    names: dict[str, Target] = {n: (FIELD, "display_name") for n in hd.DISPLAY_NAME_HEADERS}
    return {**names, **fields}


def _text_fields(mapping: dict[str, str]) -> dict[str, Target]:
    return {k: (FIELD, v) for k, v in mapping.items()}


def _emails(names: Sequence[str]) -> dict[str, Target]:
    return {n: (EMAIL, "") for n in names}


def _phones(mapping: dict[str, str]) -> dict[str, Target]:
    return {k: (NUMBER, v) for k, v in mapping.items()}


_OWN: dict[str, Target] = {
    "owner": (OWNER, ""), "phonebook": (BOOK, ""), "id": (ID, ""),
    "display_name": (FIELD, "display_name"), "given_name": (FIELD, "given_name"),
    "surname": (FIELD, "surname"), "company": (FIELD, "company"),
    "department": (FIELD, "department"), "job_title": (FIELD, "job_title"),
    "emails": (EMAIL, ""), "categories": (CATEGORY, ""),
    **{t: (NUMBER, t) for t in NUMBER_TYPES},
}

OWN = _fmt("own", "ucware-contactsync layout", _OWN, strict=True)
_OUTLOOK_EN_ALL = _foreign({**OUTLOOK_EN_FIELDS, **_phones(OUTLOOK_EN_PHONES)})
OUTLOOK_EN = _fmt("outlook-en", "Outlook export (English)", _OUTLOOK_EN_ALL,
                  _names(OUTLOOK_EN_OTHER))
OUTLOOK_COM = _fmt("outlook-com", "Outlook.com / new Outlook export", _OUTLOOK_EN_ALL,
                   _names(OUTLOOK_EN_OTHER) + _names(OUTLOOK_COM_ONLY))
OUTLOOK_DE = _fmt("outlook-de", "Outlook export (German)",
                  _foreign({**OUTLOOK_DE_FIELDS, **_phones(OUTLOOK_DE_PHONES),
                            **_phones(hd.OUTLOOK_DE_2013_PHONES)}),
                  _names(OUTLOOK_DE_OTHER) + _names(hd.OUTLOOK_DE_2013_OTHER))
GOOGLE = _fmt("google", "Google Contacts export", _foreign(GOOGLE_FIELDS),
              _names(GOOGLE_OTHER), google_pairs=True)
GOOGLE_LEGACY = _fmt("google-legacy", "Google Contacts export (legacy)",
                     _foreign(GOOGLE_LEGACY_FIELDS), _names(GOOGLE_LEGACY_OTHER),
                     google_pairs=True)
THUNDERBIRD_EN = _fmt("thunderbird-en", "Thunderbird export (English)", _foreign({
    **_text_fields(hd.THUNDERBIRD_EN_FIELDS), **_phones(hd.THUNDERBIRD_EN_PHONES),
    **_emails(hd.THUNDERBIRD_EN_EMAILS)}), _names(hd.THUNDERBIRD_EN_OTHER))
THUNDERBIRD_DE = _fmt("thunderbird-de", "Thunderbird export (German)", _foreign({
    **_text_fields(hd.THUNDERBIRD_DE_FIELDS), **_phones(hd.THUNDERBIRD_DE_PHONES),
    **_emails(hd.THUNDERBIRD_DE_EMAILS)}), _names(hd.THUNDERBIRD_DE_OTHER))
APPLE_EN = _fmt("apple-en", "Apple Contacts CSV (English)", _foreign({
    **_text_fields(hd.APPLE_EN_FIELDS),
    **_phones(hd.apple_phones(hd.APPLE_EN_LABELS, "Phone")),
    **_emails(hd.APPLE_EN_EMAILS)}), _names(hd.APPLE_EN_OTHER))
APPLE_DE = _fmt("apple-de", "Apple Contacts CSV (German)", _foreign({
    **_text_fields(hd.APPLE_DE_FIELDS),
    **_phones(hd.apple_phones(hd.APPLE_DE_LABELS, "Telefon")),
    **_emails(hd.APPLE_DE_EMAILS)}), _names(hd.APPLE_DE_OTHER))
# Order breaks ties: a file that two formats know equally well maps the same either way.
FORMATS: tuple[Format, ...] = (OWN, OUTLOOK_EN, OUTLOOK_COM, OUTLOOK_DE, GOOGLE, GOOGLE_LEGACY,
                               THUNDERBIRD_EN, THUNDERBIRD_DE, APPLE_EN, APPLE_DE)
_OUTLOOK_COM_MARKERS = frozenset(norm(n) for n in _names(OUTLOOK_COM_ONLY))


@dataclass
class Layout:
    """A recognised header: which column index feeds which target."""

    format: Format
    header: list[str]
    targets: list[tuple[int, Target]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # own layout: columns we do not know
    duplicates: list[str] = field(default_factory=list)
    unmapped: list[int] = field(default_factory=list)  # foreign formats: columns not imported

    def has(self, kind: str) -> bool:
        return any(t[0] == kind for _, t in self.targets)

    def index_of(self, kind: str) -> int | None:
        return next((i for i, t in self.targets if t[0] == kind), None)


def _score(fmt: Format, headers: list[str]) -> int:
    return sum(1 for h in headers if h and fmt.knows(h))


def detect(header: list[str]) -> Layout | None:
    """The best-matching format, or None when nothing fits."""
    headers = [norm(h) for h in header]
    scores = {f.key: _score(f, headers) for f in FORMATS}
    # Outlook.com and classic English share names; the Outlook.com-only columns decide.
    if any(h in _OUTLOOK_COM_MARKERS for h in headers):
        scores["outlook-en"] = 0
    else:
        scores["outlook-com"] = 0
    best = max(FORMATS, key=lambda f: scores[f.key])
    if scores[best.key] == 0:
        return None
    layout = Layout(best, header)
    mapped = False
    seen: set[str] = set()
    for i, h in enumerate(headers):
        if not h:
            continue
        target = best.target(h)
        if target is None:
            if best.strict:
                layout.unknown.append(header[i].strip())
            else:
                layout.unmapped.append(i)
            continue
        if best.strict and h in seen:
            layout.duplicates.append(header[i].strip())
            continue
        seen.add(h)
        layout.targets.append((i, target))
        mapped = mapped or target[0] in (FIELD, NUMBER, PHONE_VALUE)
    if not mapped:  # e.g. only "Notes" and "Birthday": nothing we could import
        return None
    return layout


def _google_target(h: str) -> Target | None:
    m = _GOOGLE_PAIR.match(h)
    if m is None:
        return None
    what, n, part = m.groups()
    if what == "phone":
        if part in ("label", "type"):
            return (PHONE_LABEL, n)
        if part == "value":
            return (PHONE_VALUE, n)
    elif what == "e-mail" and part == "value":
        return (EMAIL, "")
    return None


def google_type(label: str) -> str:
    """Our number type for a Google phone label ("* Mobile" marks the primary one)."""
    key = label.strip().lstrip("*").strip().casefold()
    return GOOGLE_PHONE_LABELS.get(key, "other")


def split_multi(cell: str) -> list[str]:
    """Several values in one cell: separated by ';' or Google's ' ::: '."""
    return [p for p in _SPLIT.split(cell.strip()) if p]


def expected_formats() -> str:
    """What an unknown header is told: the formats we recognise and our minimal header."""
    names = "; ".join(f.title for f in FORMATS if f is not OWN)
    return (f"recognised are {names}; or our own layout with at least the header "
            f"'{OWN_MINIMAL_HEADER}' (see docs/csv-format.md)")
