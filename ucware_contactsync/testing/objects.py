"""The objects of the fake tenant (apps, folders, items, change records) and its id rules;
:mod:`tenant` holds the mailboxes and the tenant that own them (ids and change tracking are
described there)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .tenant import Mailbox

# A fixed clock start keeps generated tenants byte-for-byte repeatable; seq n is n seconds later.
CLOCK_START = dt.datetime(2026, 11, 2, 7, 0, 0, tzinfo=dt.UTC)

# Graph v1.0 shows these number types as properties; all others only as MAPI extended props.
GRAPH_VISIBLE = frozenset({"business", "business2", "home", "home2", "mobile"})
# Our number type -> MAPI property tag (string props, type 0x001F), as
# Outlook stores them (Microsoft Graph: singleValueLegacyExtendedProperty, id "String 0x3A24").
MAPI_TAGS: dict[str, str] = {
    "business_fax": "0x3A24",
    "home_fax": "0x3A25",
    "other_fax": "0x3A23",
    "pager": "0x3A21",
    "other": "0x3A1F",
    "assistant": "0x3A2E",
    "callback": "0x3A02",
    "car": "0x3A1E",
    "company_main": "0x3A57",
    "radio": "0x3A1D",
    "telex": "0x3A2C",
    "tty": "0x3A4B",
    "isdn": "0x3A2D",
    "primary": "0x3A1A",
    # Visible in v1.0 as list entries, but only these tags tell which slot a number is in.
    "business2": "0x3A1B",
    "home2": "0x3A2F",
}

# The visible types are MAPI properties too; Graph returns them when asked by tag. A client
# needs 0x3A1B / 0x3A2F to tell a lone "Business 2"/"Home 2" number from the first slot, because
# Graph's businessPhones / homePhones lists are compacted (no gaps).
VISIBLE_MAPI_TAGS: dict[str, str] = {
    "business": "0x3A08",
    "business2": "0x3A1B",
    "home": "0x3A09",
    "home2": "0x3A2F",
    "mobile": "0x3A1C",
}

ItemKind = Literal["contact", "distribution_list"]


def ews_to_graph_id(ews_id: str) -> str:
    return ews_id.replace("+", "-").replace("/", "_")


def graph_to_ews_id(graph_id: str) -> str:
    return graph_id.replace("-", "+").replace("_", "/")


# Every app secret a fake tenant ever issued in this process: the test suite checks after
# each test that none of them appears in any output or log (tests/conftest.py).
ISSUED_SECRETS: set[str] = set()


@dataclass(slots=True)
class App:
    client_id: str
    secret: str
    roles: tuple[str, ...]
    secret_expired: bool = False
    display_name: str = "UCware Contactsync"
    object_id: str = ""

    def __post_init__(self) -> None:
        ISSUED_SECRETS.add(self.secret)


@dataclass(slots=True)
class Member:
    """A distribution list member (a one-off address)."""

    name: str
    email: str


class _Ids:
    """``id`` (the EWS spelling) and ``graph_id`` of a stored object with an ``ews_id``."""

    __slots__ = ()
    ews_id: str

    @property
    def id(self) -> str:
        return self.ews_id

    @property
    def graph_id(self) -> str:
        return ews_to_graph_id(self.ews_id)


@dataclass(eq=False, slots=True)
class Folder(_Ids):
    mailbox: Mailbox
    ews_id: str
    change_key: str
    name: str
    parent: Folder | None
    kind: Literal["root", "msgfolderroot", "contacts", "folder"]
    created_seq: int
    last_seq: int
    deleted_seq: int | None = None
    items: dict[str, Item] = field(default_factory=dict)  # by EWS id, insertion-ordered
    tombstones: list[Tombstone] = field(default_factory=list)
    change_log: list[Change] = field(default_factory=list)

    @property
    def folder_class(self) -> str | None:
        return {"root": None, "msgfolderroot": "IPF.Note"}.get(self.kind, "IPF.Contact")

    @property
    def is_contact_folder(self) -> bool:
        return self.kind in ("contacts", "folder")

    def children(self) -> list[Folder]:
        return [f for f in self.mailbox.folders.values()
                if f.parent is self and f.deleted_seq is None]

    def descendants(self) -> list[Folder]:
        """Depth-first, parents before children (the order FindFolder Deep gives)."""
        out: list[Folder] = []
        for child in self.children():
            out.append(child)
            out.extend(child.descendants())
        return out

    def __repr__(self) -> str:
        return f"<Folder {self.name!r} {self.ews_id[:12]}…>"


@dataclass(slots=True)
class Change:
    seq: int
    kind: Literal["create", "update", "delete"]
    item_id: str


@dataclass(slots=True)
class Tombstone(_Ids):
    ews_id: str
    kind: ItemKind
    created_seq: int
    deleted_seq: int


@dataclass(eq=False, slots=True)
class Item(_Ids):
    """A stored contact or distribution list, as the fake Exchange keeps it."""

    mailbox: Mailbox
    kind: ItemKind
    ews_id: str
    change_key: str
    folder: Folder
    created_seq: int
    last_seq: int
    display_name: str = ""
    given_name: str = ""
    surname: str = ""
    company: str = ""
    department: str = ""
    job_title: str = ""
    emails: list[str] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    # Outlook's notes (EWS Body, Graph personalNotes): served only when a client asks for it.
    notes: str = ""
    # Numbers beyond the one-per-type slots, as (type, number): what a broken or hostile
    # server could send (EWS: repeated PhoneNumbers keys; Graph: longer businessPhones /
    # homePhones lists). Only business* and home* types reach Graph.
    extra_numbers: list[tuple[str, str]] = field(default_factory=list)
    # Rendered XML / JSON per requested field set; dropped on every change (see server speed).
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def file_as(self) -> str:
        """Outlook's "File as" (EWS FileAs, Graph fileAs): "Surname, Given", else the name."""
        return ", ".join(p for p in (self.surname, self.given_name) if p) or self.display_name

    @property
    def created(self) -> dt.datetime:
        return CLOCK_START + dt.timedelta(seconds=self.created_seq)

    @property
    def modified(self) -> dt.datetime:
        return CLOCK_START + dt.timedelta(seconds=self.last_seq)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.display_name!r} {self.ews_id[:12]}…>"


# Fields add_contact / update_contact accept.
CONTACT_FIELDS = ("given_name", "surname", "display_name", "company", "department", "job_title",
                  "emails", "numbers", "categories", "notes", "extra_numbers")
