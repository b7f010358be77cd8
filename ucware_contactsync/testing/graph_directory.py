"""The Entra ID side of the fake Graph: users, organizational contacts and groups, read-only.

Routes below ``/v1.0/``: ``users``, ``users/delta``, ``users/{id|upn}``, ``contacts``,
``contacts/delta``, ``contacts/{id}``, ``groups?$filter=displayName eq '…'``, ``groups/{id}``,
``groups/{id}/members`` and ``groups/{id}/transitiveMembers[/microsoft.graph.user]``.

As Microsoft Graph documents it (learn.microsoft.com/graph/delta-query-users and
api/user-delta): the first delta round returns every object in its standard representation
(``$select`` applied), later rounds return an *updated* object as its ``id`` plus only the
properties changed since the state was issued, and a removed one as ``id`` plus
``"@removed": {"reason": "changed"}`` (soft-deleted, restorable for 30 days) or ``"deleted"``
(gone for good). A disabled account is not removed: it comes with ``"accountEnabled": false``.
Without ``$select`` a user shows Graph's default property set (no ``accountEnabled``,
``department`` or ``companyName``). Missing permission: 403 ``Authorization_RequestDenied``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote

from .graph import GraphError, GraphReply

if TYPE_CHECKING:
    from .tenant import Tenant

USER_PROPS = [
    "id", "accountEnabled", "businessPhones", "city", "companyName", "country", "department",
    "displayName", "employeeId", "faxNumber", "givenName", "jobTitle", "mail", "mailNickname",
    "mobilePhone", "officeLocation", "otherMails", "preferredLanguage", "surname",
    "userPrincipalName", "userType",
]
# What GET /users returns without $select (Graph's default set for users).
USER_DEFAULT = ["businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"]
CONTACT_PROPS = [
    "id", "addresses", "companyName", "department", "displayName", "givenName", "jobTitle",
    "mail", "mailNickname", "phones", "proxyAddresses", "surname",
]
# Roles that allow reading each collection (least privileged first).
ROLES = {
    "users": ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
              "Directory.ReadWrite.All"),
    "contacts": ("OrgContact.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "groups": ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All",
               "Directory.ReadWrite.All"),
}
DEFAULT_PAGE = 100
MAX_TOP = 999
DELTA_PAGE = 200
_FILTER_NAME = re.compile(r"^\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
_DENIED = "Insufficient privileges to complete the operation."


@dataclass(eq=False)
class DirObject:
    """A user or organizational contact; ``changed`` maps property -> seq of its last change."""

    kind: str  # user | orgContact
    id: str
    props: dict[str, Any]
    created_seq: int
    changed: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    removed_seq: int | None = None
    removed_reason: str = ""


@dataclass(eq=False)
class Group:
    id: str
    display_name: str
    members: list[str] = field(default_factory=list)  # object ids (users or groups)


class Directory:
    """The tenant's Entra objects, with one change sequence for delta rounds."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.seq = 0
        self.objects: dict[str, DirObject] = {}  # by id, users and contacts alike
        self.groups: dict[str, Group] = {}

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.tenant.rng.getrandbits(128), version=4))

    def _add(self, kind: str, props: dict[str, Any]) -> DirObject:
        with self.tenant.lock:
            self.seq += 1
            obj = DirObject(kind, self._new_id(), props, self.seq, last_seq=self.seq)
            obj.props["id"] = obj.id
            obj.changed = {p: self.seq for p in obj.props}
            self.objects[obj.id] = obj
            return obj

    def add_user(self, upn: str, display_name: str = "", given_name: str = "",
                 surname: str = "", business_phones: list[str] | tuple[str, ...] = (),
                 mobile: str | None = None, job_title: str | None = None,
                 department: str | None = None, company: str | None = None,
                 enabled: bool = True, user_type: str = "Member",
                 mail: str | None = "") -> DirObject:
        """A user; ``mail`` "" = same as the UPN, None = no mailbox address."""
        name = display_name or " ".join(p for p in (given_name, surname) if p) or upn
        return self._add("user", {
            "accountEnabled": enabled, "businessPhones": list(business_phones), "city": None,
            "companyName": company, "country": None, "department": department,
            "displayName": name, "employeeId": None, "faxNumber": None,
            "givenName": given_name or None, "jobTitle": job_title,
            "mail": upn if mail == "" else mail, "mailNickname": upn.split("@")[0],
            "mobilePhone": mobile, "officeLocation": None, "otherMails": [],
            "preferredLanguage": None, "surname": surname or None,
            "userPrincipalName": upn, "userType": user_type})

    def add_org_contact(self, display_name: str, mail: str | None = None,
                        phones: dict[str, str] | None = None, company: str | None = None,
                        department: str | None = None, job_title: str | None = None,
                        given_name: str | None = None, surname: str | None = None
                        ) -> DirObject:
        """A mail contact; ``phones``: Graph phone type (business, mobile, businessFax, …) ->
        number."""
        return self._add("orgContact", {
            "addresses": [], "companyName": company, "department": department,
            "displayName": display_name, "givenName": given_name, "jobTitle": job_title,
            "mail": mail, "mailNickname": (mail or display_name).split("@")[0],
            "phones": [{"type": t, "number": n} for t, n in (phones or {}).items()],
            "proxyAddresses": [f"SMTP:{mail}"] if mail else [], "surname": surname})

    def find(self, key: str) -> DirObject | None:
        """A live object by id, or a user by UPN (case-insensitive)."""
        with self.tenant.lock:
            obj = self.objects.get(key)
            if obj is None:
                obj = next((o for o in self.objects.values() if o.kind == "user"
                            and str(o.props["userPrincipalName"]).lower() == key.lower()), None)
            return obj if obj is not None and obj.removed_seq is None else None

    def update(self, key: str, **props: Any) -> DirObject:
        """Change Graph properties (their Graph names, e.g. ``mobilePhone``)."""
        with self.tenant.lock:
            obj = self.find(key)
            if obj is None:
                raise KeyError(key)
            unknown = set(props) - set(obj.props)
            if unknown:
                raise TypeError(f"unknown properties {sorted(unknown)}")
            self.seq += 1
            for name, value in props.items():
                obj.props[name] = value
                obj.changed[name] = self.seq
            obj.last_seq = self.seq
            return obj

    def disable(self, key: str) -> DirObject:
        return self.update(key, accountEnabled=False)

    def remove(self, key: str, permanently: bool = False) -> None:
        with self.tenant.lock:
            obj = self.find(key)
            if obj is None:
                raise KeyError(key)
            self.seq += 1
            obj.removed_seq = obj.last_seq = self.seq
            obj.removed_reason = "deleted" if permanently else "changed"
            for g in self.groups.values():
                if obj.id in g.members:
                    g.members.remove(obj.id)

    def add_group(self, display_name: str, members: Sequence[DirObject | Group] = ()) -> Group:
        with self.tenant.lock:
            g = Group(self._new_id(), display_name, [m.id for m in members])
            self.groups[g.id] = g
            return g

    def users(self) -> list[DirObject]:
        with self.tenant.lock:
            return [o for o in self.objects.values() if o.kind == "user" and o.removed_seq is None]

    def transitive_members(self, group: Group, seen: set[str] | None = None) -> list[DirObject]:
        seen = seen if seen is not None else set()
        out: list[DirObject] = []
        for mid in group.members:
            if mid in seen:
                continue
            seen.add(mid)
            if mid in self.groups:
                out.extend(self.transitive_members(self.groups[mid], seen))
            elif (obj := self.objects.get(mid)) is not None and obj.removed_seq is None:
                out.append(obj)
        return out


# -- the HTTP side ------------------------------------------------------------------------------


def serves(segs: list[str]) -> bool:
    """Whether a path (segments after ``v1.0``) is a directory route, not a mailbox's."""
    if not segs:
        return False
    if segs[0] in ("contacts", "groups"):
        return True
    return segs[0] == "users" and (len(segs) == 1 or (len(segs) == 2))


def handle(tenant: Tenant, segs: list[str], query: str, roles: set[str], base_url: str,
           full_path: str) -> GraphReply:
    """Answer one GET; raises ``GraphError``."""
    segs = [unquote(s) for s in segs]
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    collection = segs[0]
    if not roles & set(ROLES[collection]):
        raise GraphError(403, "Authorization_RequestDenied", _DENIED)
    d: Directory = tenant.directory
    link = base_url + full_path
    meta = f"{base_url}/v1.0/$metadata#"
    with tenant.lock:
        if collection == "groups":
            return _groups(d, segs, params, link, meta)
        kind = "user" if collection == "users" else "orgContact"
        props = USER_PROPS if kind == "user" else CONTACT_PROPS
        if len(segs) == 1:
            select = _select(params, props, kind)
            objs = [o for o in d.objects.values() if o.kind == kind and o.removed_seq is None]
            return _page(tenant, objs, params, link, meta + collection, select, kind, collection)
        if segs[1] == "delta":
            return _delta(tenant, d, kind, params, link, meta + collection, props)
        if len(segs) == 2:
            obj = d.find(segs[1]) if kind == "user" else d.objects.get(segs[1])
            if obj is None or obj.kind != kind or obj.removed_seq is not None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{segs[1]}' does "
                                 "not exist or one of its queried reference-property objects "
                                 "are not present.")
            body = {"@odata.context": f"{meta}{collection}/$entity",
                    **_render(obj, _select(params, props, kind), kind)}
            return GraphReply(200, body, operation=kind)
    raise GraphError(400, "Request_BadRequest", f"Unsupported segment '{segs[-1]}'.")


def _select(params: dict[str, str], props: list[str], kind: str) -> tuple[str, ...]:
    lower = {p.lower(): p for p in props}
    out = []
    for name in (s.strip() for s in params.get("$select", "").split(",") if s.strip()):
        if name.lower() not in lower:
            raise GraphError(400, "Request_BadRequest", f"Could not find a property named "
                             f"'{name}' on type 'Microsoft.DirectoryServices.{kind[0].upper()}"
                             f"{kind[1:]}'.")
        out.append(lower[name.lower()])
    return tuple(out)


def _render(obj: DirObject, select: tuple[str, ...], kind: str,
            only_since: int | None = None) -> dict[str, Any]:
    names = select or (USER_DEFAULT if kind == "user" else CONTACT_PROPS)
    out: dict[str, Any] = {"id": obj.id}
    for p in names:
        if p == "id":
            continue
        if only_since is not None and obj.changed.get(p, 0) <= only_since:
            continue
        out[p] = obj.props.get(p)
    return out


def _top(params: dict[str, str]) -> int:
    if "$top" not in params:
        return DEFAULT_PAGE
    try:
        top = int(params["$top"])
    except ValueError as exc:
        raise GraphError(400, "Request_BadRequest", "Invalid $top.") from exc
    if not 1 <= top <= MAX_TOP:
        raise GraphError(400, "Request_BadRequest",
                         f"Invalid page size specified: '{top}'. Must be between 1 and 999 "
                         "inclusive.")
    return top


def _page(tenant: Tenant, objs: list[DirObject], params: dict[str, str], link: str, meta: str,
          select: tuple[str, ...], kind: str, operation: str, typed: bool = False
          ) -> GraphReply:
    if "$skiptoken" in params:
        tok = tenant.unseal(params["$skiptoken"], urlsafe=True)
        if tok is None or tok.get("t") != "dirlist":
            raise GraphError(400, "Request_BadRequest", "The skip token is invalid.")
        offset, size, select = int(tok["o"]), int(tok["n"]), tuple(tok["s"])
    else:
        offset, size = 0, _top(params)
    page = objs[offset:offset + size]
    body: dict[str, Any] = {"@odata.context": meta,
                            "value": [_render(o, select, kind) for o in page]}
    if typed:  # a directoryObject collection says what each member is
        for v, o in zip(body["value"], page, strict=True):
            v["@odata.type"] = f"#microsoft.graph.{o.kind}"
    if offset + size < len(objs):
        sealed = tenant.seal({"t": "dirlist", "o": offset + size, "n": size, "s": list(select)},
                             urlsafe=True)
        body["@odata.nextLink"] = f"{link}?%24skiptoken={quote(sealed, safe='')}"
    return GraphReply(200, body, operation=operation)


def _delta(tenant: Tenant, d: Directory, kind: str, params: dict[str, str], link: str,
           meta: str, props: list[str]) -> GraphReply:
    token = params.get("$skiptoken") or params.get("$deltatoken")
    if token:
        tok = tenant.unseal(token, urlsafe=True)
        if tok is None or tok.get("t") != "dirdelta" or tok.get("k0") != kind:
            raise GraphError(400, "Request_BadRequest", "Badly formed token.")
        known, cursor, select = int(tok["k"]), int(tok["c"]), tuple(tok["s"])
    else:
        known = cursor = 0
        select = _select(params, props, kind)
    pending: list[tuple[int, DirObject]] = []
    for o in d.objects.values():
        if o.kind != kind or o.last_seq <= cursor:
            continue
        if o.removed_seq is not None and o.created_seq > known:
            continue  # created and removed between two rounds: the client never saw it
        pending.append((o.last_seq, o))
    pending.sort(key=lambda p: p[0])
    page, last = pending[:DELTA_PAGE], len(pending) <= DELTA_PAGE
    value = []
    for _seq, o in page:
        if o.removed_seq is not None:
            value.append({"id": o.id, "@removed": {"reason": o.removed_reason}})
        elif o.created_seq > known:
            value.append(_render(o, select, kind))
        else:
            value.append(_render(o, select, kind, only_since=known))
    new_known, new_cursor = (d.seq, d.seq) if last else (known, page[-1][0])
    state = tenant.seal({"t": "dirdelta", "k0": kind, "k": new_known, "c": new_cursor,
                         "s": list(select)}, urlsafe=True)
    base = link.split("?")[0]
    body: dict[str, Any] = {"@odata.context": meta, "value": value}
    if last:
        body["@odata.deltaLink"] = f"{base}?%24deltatoken={quote(state, safe='')}"
    else:
        body["@odata.nextLink"] = f"{base}?%24skiptoken={quote(state, safe='')}"
    return GraphReply(200, body, operation=f"{kind}-delta")


def _groups(d: Directory, segs: list[str], params: dict[str, str], link: str, meta: str
            ) -> GraphReply:
    if len(segs) == 1:
        m = _FILTER_NAME.match(params.get("$filter", ""))
        if not m:
            raise GraphError(400, "Request_UnsupportedQuery",
                             "The fake Graph filters groups by displayName eq '…' only.")
        name = m.group(1).replace("''", "'")
        found = [g for g in d.groups.values() if g.display_name.lower() == name.lower()]
        return GraphReply(200, {"@odata.context": meta + "groups", "value": [
            {"id": g.id, "displayName": g.display_name} for g in found]}, operation="groups")
    group = d.groups.get(segs[1])
    if group is None:
        raise GraphError(404, "Request_ResourceNotFound", f"Resource '{segs[1]}' does not "
                         "exist or one of its queried reference-property objects are not "
                         "present.")
    if len(segs) == 2:
        return GraphReply(200, {"id": group.id, "displayName": group.display_name},
                          operation="group")
    rel = segs[2]
    if rel == "members":
        objs = [o for mid in group.members
                if (o := d.objects.get(mid)) is not None and o.removed_seq is None]
    elif rel == "transitiveMembers":
        objs = d.transitive_members(group)
    else:
        raise GraphError(400, "Request_BadRequest", f"Unsupported segment '{rel}'.")
    cast = segs[3] if len(segs) > 3 else ""
    if cast == "microsoft.graph.user":
        objs = [o for o in objs if o.kind == "user"]
    elif cast:
        raise GraphError(400, "Request_BadRequest", f"Unsupported cast '{cast}'.")
    select = _select(params, USER_PROPS, "user")
    return _page(d.tenant, objs, params, link, meta + "directoryObjects", select, "user", rel,
                 typed=True)
