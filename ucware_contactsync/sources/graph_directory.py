"""The company directory through Microsoft Graph: Entra users and, optionally, mail contacts.

Not to be confused with ``ucware_contactsync.directory`` (the UC server's own users and groups).

* Users come from ``/users/delta`` (``User.Read.All``): the first round lists every account with
  the properties we store, its deltaLink is the state. Later rounds name changed accounts with
  only the properties that changed (as Graph documents for users), so each changed account is
  read again with ``GET /users/{id}``; removed ones come with ``@removed``.
* Only enabled member accounts are kept: a disabled account, a guest and a removed account are
  reported as deleted. Accounts without any number are left out by the writer.
* ``directory_orgcontacts=true`` adds the tenant's mail contacts (``/contacts/delta``,
  ``OrgContact.Read.All``).
* ``directory_group`` limits it to the (transitive) members of one group
  (``GroupMember.Read.All``). Membership has no cheap change feed, so then every run lists the
  members in full; the writer still writes only what changed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..contact import NUMBER_TYPES, Contact, PhoneNumber
from ..settings import Settings
from .auth import TokenProvider
from .base import ContactSource, Kind, MailboxRead, SourceError
from .graph import GraphSource, _Call

log = logging.getLogger(__name__)

USERS, CONTACTS = "users", "orgcontacts"  # state keys
USER_SELECT = ("id,accountEnabled,userType,displayName,givenName,surname,mail,businessPhones,"
               "mobilePhone,jobTitle,department,companyName")
CONTACT_SELECT = "id,displayName,givenName,surname,mail,phones,jobTitle,department,companyName"
# From this many changed accounts in one round a fresh full round is cheaper than one GET each.
BULK_CHANGES = 100
PAGE = "999"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# orgContact phone types (Graph phoneType) -> our number types, second of a kind in the slot 2.
_PHONE_TYPES = {"business": ("business", "business2"), "home": ("home", "home2"),
                "mobile": ("mobile",), "businessFax": ("business_fax",),
                "homeFax": ("home_fax",), "otherFax": ("other_fax",), "pager": ("pager",),
                "assistant": ("assistant",), "radio": ("radio",), "other": ("other",)}
_ORDER = {t: i for i, t in enumerate(NUMBER_TYPES)}

ROLE_HINTS = {
    USERS: "User.Read.All",
    CONTACTS: "OrgContact.Read.All",
    "group": "GroupMember.Read.All",
}
WHAT = {USERS: "the directory's users", CONTACTS: "the tenant's mail contacts",
        "group": "the members of directory_group"}


def role_hint(role: str) -> str:
    return (f"grant the app the Microsoft Graph application permission {role} with admin "
            "consent (Entra admin center > App registrations > API permissions)")


class DirectorySource(ContactSource):
    """Reads the company directory; ``read``'s mailbox argument is only a label."""

    api = "graph"

    def __init__(self, settings: Settings, tokens: TokenProvider | None = None,
                 max_wait: float = 300.0) -> None:
        self.settings = settings
        self.orgcontacts = settings.directory_orgcontacts
        self.group = settings.directory_group.strip()
        self.graph = GraphSource(settings, tokens=tokens, max_wait=max_wait)
        self.root = f"{self.graph.graph_url}/v1.0"

    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        wanted = {USERS, CONTACTS} if self.orgcontacts else {USERS}
        with _Call(self.graph, "the directory", self.graph.max_wait) as call:
            if self.group or not states or set(states) != wanted:
                result = self._full(call)
            else:
                result = self._incremental(call, states)
            result.requests = call.requests
            log.debug("directory: %s read, %d entries, %d removed, %d requests",
                      "full" if result.full else "incremental", len(result.contacts),
                      len(result.deleted), call.requests)
            return result

    def check(self, mailbox: str = "") -> None:
        """One small request per permission the configuration needs."""
        with _Call(self.graph, "the directory", 60.0) as call:
            self._get(call, USERS, f"{self.root}/users", {"$select": "id", "$top": "1"})
            if self.orgcontacts:
                self._get(call, CONTACTS, f"{self.root}/contacts", {"$select": "id",
                                                                     "$top": "1"})
            if self.group:
                self._group_id(call)

    def close(self) -> None:
        self.graph.close()

    # -- reads ------------------------------------------------------------------------------------

    def _full(self, call: _Call) -> MailboxRead:
        result = MailboxRead(api=self.api, full=True)
        if self.group:
            gid = self._group_id(call)
            url = f"{self.root}/groups/{quote(gid)}/transitiveMembers/microsoft.graph.user"
            for page in self._pages(call, "group", url, {"$select": USER_SELECT, "$top": PAGE}):
                result.contacts.extend(c for d in page.get("value", ())
                                       if (c := user_contact(d)) is not None)
        else:
            link = ""
            for page in self._pages(call, USERS, f"{self.root}/users/delta",
                                    {"$select": USER_SELECT}):
                result.contacts.extend(c for d in page.get("value", ()) if "@removed" not in d
                                       and (c := user_contact(d)) is not None)
                link = page.get("@odata.deltaLink", link)
            result.states[USERS] = self._link(link)
        if self.orgcontacts:
            link = ""
            url = f"{self.root}/contacts" + ("" if self.group else "/delta")
            params = {"$select": CONTACT_SELECT, **({"$top": PAGE} if self.group else {})}
            for page in self._pages(call, CONTACTS, url, params):
                result.contacts.extend(org_contact(d) for d in page.get("value", ())
                                       if "@removed" not in d)
                link = page.get("@odata.deltaLink", link)
            if not self.group:
                result.states[CONTACTS] = self._link(link)
        if self.group:
            result.states = {}  # every run lists the group in full
        return result

    def _incremental(self, call: _Call, states: Mapping[str, str]) -> MailboxRead:
        result = MailboxRead(api=self.api, full=False)
        for key in sorted(states):
            changed: list[str] = []
            link = ""
            for page in self._pages(call, key, states[key], None, state_link=True):
                for d in page.get("value", ()):
                    (result.deleted if "@removed" in d else changed).append(str(d["id"]))
                link = page.get("@odata.deltaLink", link)
            if len(changed) >= BULK_CHANGES:
                log.debug("directory: %d changes in %s, reading everything", len(changed), key)
                return self._full(call)
            coll, select = ("users", USER_SELECT) if key == USERS else ("contacts",
                                                                         CONTACT_SELECT)
            for oid in dict.fromkeys(changed):
                data = self._get(call, key, f"{self.root}/{coll}/{quote(oid)}",
                                 {"$select": select}, missing_ok=True)
                contact = None if data is None else (
                    user_contact(data) if key == USERS else org_contact(data))
                if contact is None:
                    result.deleted.append(oid)
                else:
                    result.contacts.append(contact)
            result.states[key] = self._link(link)
        return result

    # -- requests ---------------------------------------------------------------------------------

    def _group_id(self, call: _Call) -> str:
        if _GUID.match(self.group):
            return self.group
        name = self.group.replace("'", "''")
        body = self._get(call, "group", f"{self.root}/groups",
                         {"$filter": f"displayName eq '{name}'", "$select": "id,displayName"})
        found = (body or {}).get("value", [])
        if len(found) != 1:
            what = "no group" if not found else f"{len(found)} groups"
            raise SourceError(Kind.MAILBOX_MISSING, f"directory_group: Entra has {what} named "
                              f"{self.group!r}", "set directory_group to the group's object id "
                              "(Entra admin center > Groups > the group > Object ID)")
        return str(found[0]["id"])

    def _pages(self, call: _Call, what: str, url: str, params: dict[str, str] | None,
               state_link: bool = False) -> Iterator[dict[str, Any]]:
        try:
            yield from call.pages(url, params, state_link=state_link)
        except SourceError as exc:
            raise _explain(exc, what) from None

    def _get(self, call: _Call, what: str, url: str, params: dict[str, str],
             missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            return call.find(url, params) if missing_ok else call.get(url, params)
        except SourceError as exc:
            raise _explain(exc, what) from None

    @staticmethod
    def _link(link: str) -> str:
        if not link:
            raise SourceError(Kind.TRANSIENT, "Graph ended a delta round of the directory "
                              "without a deltaLink", "the next run reads the directory again")
        return link


def _explain(exc: SourceError, what: str) -> SourceError:
    """Say which permission is missing instead of the mailbox wording of GraphSource."""
    if exc.kind is Kind.ACCESS_DENIED:
        role = ROLE_HINTS.get(what, "User.Read.All")
        return SourceError(Kind.ACCESS_DENIED, f"Microsoft Graph refused to read {WHAT[what]}: "
                           f"the app lacks {role}", role_hint(role))
    if exc.kind is Kind.MAILBOX_MISSING and what == "group":
        return SourceError(Kind.MAILBOX_MISSING, f"directory_group {exc.message}",
                           "set directory_group to an existing group's object id or name")
    return exc


def user_contact(data: Mapping[str, Any]) -> Contact | None:
    """An enabled member account as a Contact; None for disabled accounts and guests."""
    if data.get("accountEnabled") is False or (data.get("userType") or "Member") != "Member":
        return None
    numbers = [PhoneNumber(t, n.strip()) for t, n in zip(
        ("business", "business2"), [str(p) for p in data.get("businessPhones") or [] if p],
        strict=False) if n.strip()]
    mobile = str(data.get("mobilePhone") or "").strip()
    if mobile:
        numbers.append(PhoneNumber("mobile", mobile))
    numbers.sort(key=lambda n: _ORDER[n.type])
    mail = str(data.get("mail") or "").strip()
    return Contact(
        display_name=_text(data.get("displayName")), given_name=_text(data.get("givenName")),
        surname=_text(data.get("surname")), company=_text(data.get("companyName")),
        department=_text(data.get("department")), job_title=_text(data.get("jobTitle")),
        emails=(mail,) if mail else (), numbers=tuple(numbers), source_id=str(data["id"]))


def org_contact(data: Mapping[str, Any]) -> Contact:
    """A mail contact (orgContact) as a Contact."""
    found: dict[str, str] = {}
    for phone in data.get("phones") or []:
        number = str(phone.get("number") or "").strip()
        slots = _PHONE_TYPES.get(str(phone.get("type") or ""), ("other",))
        slot = next((s for s in slots if s not in found), None)
        if number and slot:
            found[slot] = number
    mail = str(data.get("mail") or "").strip()
    return Contact(
        display_name=_text(data.get("displayName")), given_name=_text(data.get("givenName")),
        surname=_text(data.get("surname")), company=_text(data.get("companyName")),
        department=_text(data.get("department")), job_title=_text(data.get("jobTitle")),
        emails=(mail,) if mail else (),
        numbers=tuple(PhoneNumber(t, found[t]) for t in NUMBER_TYPES if t in found),
        source_id=str(data["id"]))


def _text(value: Any) -> str:
    return str(value).strip() if value else ""
