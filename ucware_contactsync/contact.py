"""Contacts as plain immutable values, independent of any source library."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

# The number types, in EWS order and spelling (our JSON / CLI / CSV names, docs/csv-format.md).
NUMBER_TYPES: tuple[str, ...] = (
    "business",
    "business2",
    "mobile",
    "home",
    "home2",
    "business_fax",
    "home_fax",
    "other_fax",
    "other",
    "pager",
    "car",
    "assistant",
    "company_main",
    "callback",
    "radio",
    "isdn",
    "telex",
    "tty",
    "primary",
)

# EWS PhoneNumberKey labels -> our number types.
EWS_LABELS: dict[str, str] = {
    "BusinessPhone": "business",
    "BusinessPhone2": "business2",
    "MobilePhone": "mobile",
    "HomePhone": "home",
    "HomePhone2": "home2",
    "BusinessFax": "business_fax",
    "HomeFax": "home_fax",
    "OtherFax": "other_fax",
    "OtherTelephone": "other",
    "Pager": "pager",
    "CarPhone": "car",
    "AssistantPhone": "assistant",
    "CompanyMainPhone": "company_main",
    "Callback": "callback",
    "RadioPhone": "radio",
    "Isdn": "isdn",
    "Telex": "telex",
    "TtyTddPhone": "tty",
    "PrimaryPhone": "primary",
}


_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Types json.dumps refuses: orjson must refuse them too, not write them its own way.
_REFUSE = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def compact_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, the same text (tested
    for every code point): content hashes and history snapshots. orjson writes it several
    times faster; what orjson refuses (lone surrogates) json writes as before."""
    try:
        return orjson.dumps(value, option=_REFUSE).decode()
    except TypeError:
        return _json_encode(value)


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    type: str
    number: str

    def __post_init__(self) -> None:
        if self.type not in NUMBER_TYPES:
            raise ValueError(f"unknown number type {self.type!r}")


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact as a source delivers it. ``source_id`` is None for hand-typed entries."""

    display_name: str = ""
    given_name: str = ""
    surname: str = ""
    company: str = ""
    department: str = ""
    job_title: str = ""
    emails: tuple[str, ...] = ()
    numbers: tuple[PhoneNumber, ...] = ()
    categories: tuple[str, ...] = ()
    source_id: str | None = None
    change_key: str | None = None
    folder: str | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        """What a phone shows: the display name, else the parts we have."""
        if self.display_name:
            return self.display_name
        full = " ".join(p for p in (self.given_name, self.surname) if p)
        return full or self.company or (self.emails[0] if self.emails else "")

    def content_hash(self) -> str:
        """Stable fingerprint of everything we store; ids and change keys excluded."""
        payload = [
            self.name,
            self.given_name,
            self.surname,
            self.company,
            self.department,
            self.job_title,
            list(self.emails),
            [[n.type, n.number] for n in self.numbers],
            sorted(self.categories),
        ]
        raw = compact_json(payload)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]
