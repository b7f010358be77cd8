"""Graph contacts as our ``Contact``: the fields we ask for and how numbers are mapped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...contact import NUMBER_TYPES, Contact, PhoneNumber
from ..base import canonical_id

CONTACT_TYPE = "#microsoft.graph.contact"
# Only the fields we store: Graph's default contact has ~40 properties.
SELECT = ",".join((
    "id", "changeKey", "displayName", "givenName", "surname", "companyName", "department",
    "jobTitle", "emailAddresses", "businessPhones", "homePhones", "mobilePhone", "categories",
))
# MAPI string properties for the number types v1.0 does not show (MS-OXPROPS tags).
EXTENDED_NUMBERS: dict[str, str] = {
    "0x3A24": "business_fax",
    "0x3A25": "home_fax",
    "0x3A23": "other_fax",
    "0x3A21": "pager",
    "0x3A1F": "other",
    "0x3A2E": "assistant",
    "0x3A02": "callback",
    "0x3A1E": "car",
    "0x3A57": "company_main",
    "0x3A1D": "radio",
    "0x3A2C": "telex",
    "0x3A4B": "tty",
    "0x3A2D": "isdn",
    "0x3A1A": "primary",
    # Not hidden, but businessPhones / homePhones are lists without slots: a contact with
    # only Business Phone 2 would come back as "business". These two tell the slots apart.
    "0x3A1B": "business2",
    "0x3A2F": "home2",
}
_EXT_BY_ID = {f"string {tag}".lower(): t for tag, t in EXTENDED_NUMBERS.items()}
EXPAND = ("singleValueExtendedProperties($filter="
          + " or ".join(f"id eq 'String {tag}'" for tag in EXTENDED_NUMBERS) + ")")
_ORDER = {t: i for i, t in enumerate(NUMBER_TYPES)}


def to_contact(data: Mapping[str, Any], folder_id: str | None = None) -> Contact:
    """A Graph contact (with expanded extended properties) as our Contact.

    Numbers come in NUMBER_TYPES order, blanks dropped, text stripped: the same tuple an EWS
    read of the same item gives.
    """
    found: dict[str, str] = {}

    def put(kind: str, value: Any) -> None:
        text = value.strip() if isinstance(value, str) else ""
        if text and kind not in found:
            found[kind] = text

    ext: dict[str, str] = {}
    for prop in data.get("singleValueExtendedProperties") or ():
        kind = _EXT_BY_ID.get(str(prop.get("id", "")).lower()) if isinstance(prop, dict) else None
        if kind and isinstance(prop.get("value"), str) and prop["value"].strip():
            ext.setdefault(kind, prop["value"])
    for first, second, values in (("business", "business2", _strings(data.get("businessPhones"))),
                                  ("home", "home2", _strings(data.get("homePhones")))):
        if second in ext:  # the slot of the second number is known: the rest is the first
            rest = list(values)
            if ext[second].strip() in [v.strip() for v in rest]:
                rest.pop([v.strip() for v in rest].index(ext[second].strip()))
            put(first, rest[0] if rest else None)
        else:
            for kind, index in ((first, 0), (second, 1)):
                if index < len(values):
                    put(kind, values[index])
    put("mobile", data.get("mobilePhone"))
    for kind, value in ext.items():
        put(kind, value)
    numbers = tuple(PhoneNumber(t, found[t]) for t in sorted(found, key=_ORDER.__getitem__))
    emails = tuple(a for a in (_text(e.get("address")) for e in data.get("emailAddresses") or ()
                               if isinstance(e, dict)) if a)
    return Contact(
        display_name=_text(data.get("displayName")),
        given_name=_text(data.get("givenName")),
        surname=_text(data.get("surname")),
        company=_text(data.get("companyName")),
        department=_text(data.get("department")),
        job_title=_text(data.get("jobTitle")),
        emails=emails,
        numbers=numbers,
        categories=tuple(_strings(data.get("categories"))),
        source_id=canonical_id(str(data["id"])),
        change_key=data.get("changeKey") or None,
        folder=folder_id,
    )



def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""  # Graph sends null for unset


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def is_contact(data: Mapping[str, Any]) -> bool:
    # Lists carry no @odata.type for items of the collection's own type.
    return str(data.get("@odata.type") or CONTACT_TYPE) == CONTACT_TYPE
