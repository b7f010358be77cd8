"""The Microsoft Graph v1.0 side of the fake: contacts and contact folders, app-only, read-only.

Routes below ``/v1.0/users/{upn}/``: ``contacts``, ``contacts/{id}``, ``contacts/delta``,
``contactFolders``, ``contactFolders/delta``, ``contactFolders/{id}``,
``contactFolders/{id}/contacts[/{id}|/delta]``,
``contactFolders/{id}/childFolders``. ``$select``, ``$top``, ``$expand`` of
``singleValueExtendedProperties($filter=id eq 'String 0x3A24' or …)`` on single contacts and
lists (not on delta: Graph does not document it there, so we ignore it), ``Prefer:
odata.maxpagesize`` (delta caps it at 200 and reports ``Preference-Applied``). Next/delta links
carry opaque signed tokens that remember ``$select``. Distribution lists are not contacts in
Graph and never show up here. Unset string properties come as ``null``, as Graph sends them.
A contact added as Graph JSON (``Mailbox.add_graph_contact``) is served as written instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from .tenant import MAPI_TAGS, VISIBLE_MAPI_TAGS, Folder, Item, Mailbox, Tenant, Tombstone

DEFAULT_LIST_PAGE = 10  # Graph's default page size for contact lists
DEFAULT_DELTA_PAGE = 100
MAX_DELTA_PAGE = 200
MAX_TOP = 1000

# tag (upper-case hex) -> our number type
_TYPE_BY_TAG = {tag.upper(): t for t, tag in {**MAPI_TAGS, **VISIBLE_MAPI_TAGS}.items()}
_EXPAND_RE = re.compile(r"^singleValueExtendedProperties\(\$filter=(.*)\)$", re.IGNORECASE)
_ID_EQ_RE = re.compile(r"id\s+eq\s+'([^']*)'", re.IGNORECASE)


@dataclass(slots=True)
class GraphReply:
    status: int
    body: Any = None  # dict -> JSON, or pre-encoded bytes
    headers: dict[str, str] = field(default_factory=dict)
    operation: str = ""
    mailbox: str | None = None


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _none(value: str) -> str | None:
    return value or None


def _phones(item: Item, kind: str) -> list[str]:
    # Outlook keeps at most two business and two home numbers; Graph compacts the lists, so a
    # lone "Business 2" number comes as businessPhones[0] (as in Graph).
    n = item.numbers
    return [n[t] for t in (kind, f"{kind}2") if t in n] + _extra(item, kind)


# Every v1.0 property of a contact, in Graph's order, and how to render it (hidden number
# types are NOT among them). One function per property: a $select renders only its own.
_PROPERTIES: dict[str, Any] = {
    "@odata.etag": lambda i: f'W/"{i.change_key}"',
    "id": lambda i: i.graph_id,
    "createdDateTime": lambda i: i.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "lastModifiedDateTime": lambda i: i.modified.strftime("%Y-%m-%dT%H:%M:%SZ"),
    "changeKey": lambda i: i.change_key,
    "categories": lambda i: list(i.categories),
    "parentFolderId": lambda i: i.folder.graph_id,
    "birthday": lambda i: None,
    "fileAs": lambda i: i.file_as,
    "displayName": lambda i: _none(i.display_name),
    "givenName": lambda i: _none(i.given_name),
    "initials": lambda i: None,
    "middleName": lambda i: None,
    "nickName": lambda i: None,
    "surname": lambda i: _none(i.surname),
    "title": lambda i: None,
    "yomiGivenName": lambda i: None,
    "yomiSurname": lambda i: None,
    "yomiCompanyName": lambda i: None,
    "generation": lambda i: None,
    "imAddresses": lambda i: [],
    "jobTitle": lambda i: _none(i.job_title),
    "companyName": lambda i: _none(i.company),
    "department": lambda i: _none(i.department),
    "officeLocation": lambda i: None,
    "profession": lambda i: None,
    "businessHomePage": lambda i: None,
    "assistantName": lambda i: None,
    "manager": lambda i: None,
    "homePhones": lambda i: _phones(i, "home"),
    "mobilePhone": lambda i: i.numbers.get("mobile"),
    "businessPhones": lambda i: _phones(i, "business"),
    "spouseName": lambda i: None,
    "personalNotes": lambda i: i.notes,
    "children": lambda i: [],
    "emailAddresses": lambda i: [{"name": e, "address": e} for e in i.emails],
    "homeAddress": lambda i: {},
    "businessAddress": lambda i: {},
    "otherAddress": lambda i: {},
}


# Graph property names of a contact (lower-case -> canonical) for $select validation.
CONTACT_PROPS = [p for p in _PROPERTIES if p != "@odata.etag"]
_PROP_BY_LOWER = {p.lower(): p for p in CONTACT_PROPS}


def contact_json(item: Item) -> dict[str, Any]:
    """All v1.0 properties of a contact (hidden number types are NOT among them)."""
    return {name: render(item) for name, render in _PROPERTIES.items()}


def _extra(item: Item, kind: str) -> list[str]:
    """``Item.extra_numbers`` of the business* / home* types, appended to Graph's lists."""
    return [num for t, num in item.extra_numbers if t in (kind, f"{kind}2")]


def selected_json(item: Item, select: tuple[str, ...]) -> dict[str, Any]:
    doc = item.mailbox.graph_docs.get(item.ews_id)
    if doc is not None:
        return document_json(item, doc, select)
    key = ("graph", select)
    cached = item.cache.get(key)
    if cached is None:
        if select:
            cached = {p: _PROPERTIES[p](item)
                      for p in ("@odata.etag", "id", *(p for p in select if p != "id"))}
        else:
            cached = contact_json(item)
        item.cache[key] = cached
    return cached


def document_json(item: Item, doc: dict[str, Any], select: tuple[str, ...]) -> dict[str, Any]:
    """A contact added as Graph JSON (``Mailbox.add_graph_contact``): the document as written,
    with ``$select`` only the selected keys it has. ``@odata.etag`` and ``id`` (Graph always
    returns both) are the item's where the document has none."""
    out: dict[str, Any] = {"@odata.etag": f'W/"{item.change_key}"', "id": item.graph_id}
    keys = [k for k in ("@odata.etag", "id", *select) if k in doc] if select else list(doc)
    out.update((k, doc[k]) for k in keys)
    return out


def extended_props(item: Item, wanted: list[str]) -> list[dict[str, str]]:
    out = []
    for pid in wanted:
        parts = pid.split()
        if len(parts) != 2 or parts[0].lower() != "string":
            continue
        t = _TYPE_BY_TAG.get(parts[1].upper())
        if t is not None and t in item.numbers:
            # Graph answers with lower-case hex, whatever case the client asked in.
            out.append({"id": f"String {parts[1].lower()}", "value": item.numbers[t]})
    return out


def folder_json(folder: Folder) -> dict[str, Any]:
    return {"id": folder.graph_id, "displayName": folder.name,
            "parentFolderId": folder.parent.graph_id if folder.parent else None}


class Graph:
    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.link_epoch: dict[str, int] = {}  # mailbox -> generation of folder-delta links
        self.meta = ""  # @odata.context prefix of the request being answered (under lock)

    def handle(self, path: str, full_path: str, query: str, prefer: str | None,
               base_url: str, mbx: Mailbox) -> GraphReply:
        """``path`` is the part after ``/v1.0/users/{upn}/`` (raw); ``full_path`` all of it."""
        segs = [unquote(s) for s in path.strip("/").split("/")]
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        unknown = [k for k in params if k.startswith("$") and k not in (
            "$select", "$top", "$expand", "$skiptoken", "$deltatoken", "$skip", "$count",
            "$orderby")]
        if unknown or "$filter" in params:
            raise GraphError(400, "BadRequest",
                             f"The fake Graph does not support {unknown or ['$filter']}.")
        with self.tenant.lock:
            return self._route(segs, params, prefer, base_url, mbx, full_path)

    def _route(self, segs: list[str], params: dict[str, str], prefer: str | None,
               base_url: str, mbx: Mailbox, full_path: str) -> GraphReply:
        link_base = base_url + full_path
        self.meta = f"{base_url}/v1.0/$metadata#users('{mbx.key}')"
        if segs[0] == "contacts":
            if len(segs) == 1:
                return self._list(mbx.contacts, params, prefer, link_base, mbx, "contacts")
            if segs[1:] == ["delta"]:
                return self._delta(mbx.contacts, params, prefer, link_base, mbx)
            if len(segs) == 2:
                return self._get_contact(mbx, None, segs[1], params)
        elif segs[0] == "contactFolders":
            if len(segs) == 1:
                return self._folders(mbx.contacts, params, link_base, mbx, "contactFolders")
            if segs[1:] == ["delta"]:
                return self._folder_delta(params, prefer, link_base, mbx)
            folder = self._folder(mbx, segs[1])
            if len(segs) == 2:
                return GraphReply(200, folder_json(folder), operation="contactFolder",
                                  mailbox=mbx.key)
            if segs[2] == "childFolders" and len(segs) == 3:
                return self._folders(folder, params, link_base, mbx, "childFolders")
            if segs[2] == "contacts":
                if len(segs) == 3:
                    return self._list(folder, params, prefer, link_base, mbx, "contacts")
                if segs[3:] == ["delta"]:
                    return self._delta(folder, params, prefer, link_base, mbx)
                if len(segs) == 4:
                    return self._get_contact(mbx, folder, segs[3], params)
        raise GraphError(400, "BadRequest",
                         f"Resource not found for the segment '{segs[-1]}'.")

    # -- helpers ---------------------------------------------------------------------------------
    def _folder(self, mbx: Mailbox, fid: str) -> Folder:
        folder = mbx.contacts if fid.lower() == "contacts" else mbx.folder(fid)
        if folder is None or not folder.is_contact_folder:
            raise GraphError(404, "ErrorItemNotFound",
                             "The specified object was not found in the store.")
        return folder

    @staticmethod
    def _select(params: dict[str, str]) -> tuple[str, ...]:
        raw = params.get("$select", "")
        out = []
        for name in (s.strip() for s in raw.split(",") if s.strip()):
            prop = _PROP_BY_LOWER.get(name.lower())
            if prop is None:
                raise GraphError(400, "RequestBroker--ParseUri",
                                 f"Could not find a property named '{name}' on type "
                                 "'microsoft.graph.contact'.")
            out.append(prop)
        return tuple(out)

    @staticmethod
    def _expand(params: dict[str, str]) -> list[str] | None:
        raw = params.get("$expand")
        if not raw:
            return None
        m = _EXPAND_RE.match(raw.strip())
        if not m:
            raise GraphError(400, "BadRequest",
                             "The fake Graph only expands singleValueExtendedProperties($filter="
                             "id eq '…' or …).")
        ids = _ID_EQ_RE.findall(m.group(1))
        if not ids:
            raise GraphError(400, "ErrorInvalidProperty", "Invalid $filter for extended props.")
        return ids

    def _render(self, item: Item, select: tuple[str, ...], expand: list[str] | None
                ) -> dict[str, Any]:
        data = selected_json(item, select)
        if expand:
            ext = extended_props(item, expand)
            if ext:
                data = dict(data)
                data["singleValueExtendedProperties"] = ext
        return data

    def _get_contact(self, mbx: Mailbox, folder: Folder | None, cid: str,
                     params: dict[str, str]) -> GraphReply:
        item = mbx.item(cid)
        if item is None or item.kind != "contact" or (folder is not None
                                                       and item.folder is not folder):
            raise GraphError(404, "ErrorItemNotFound",
                             "The specified object was not found in the store.")
        return GraphReply(200, self._render(item, self._select(params), self._expand(params)),
                          operation="contact", mailbox=mbx.key)

    def _page_size(self, params: dict[str, str], prefer: str | None, default: int,
                   cap: int) -> tuple[int, int | None]:
        """(size, applied maxpagesize or None)."""
        pref = _maxpagesize(prefer)
        if "$top" in params:
            try:
                top = int(params["$top"])
            except ValueError as exc:
                raise GraphError(400, "BadRequest", "Invalid $top value.") from exc
            if not 1 <= top <= MAX_TOP:
                raise GraphError(400, "ErrorInvalidArgument",
                                 f"The value of $top must be between 1 and {MAX_TOP}.")
            return top, None
        if pref is not None:
            applied = max(1, min(pref, cap))
            return applied, applied
        return default, None

    def _list(self, folder: Folder, params: dict[str, str], prefer: str | None, link_base: str,
              mbx: Mailbox, operation: str) -> GraphReply:
        if "$skiptoken" in params:
            tok = self.tenant.unseal(params["$skiptoken"], urlsafe=True)
            if tok is None or tok.get("t") != "list" or tok.get("f") != folder.ews_id:
                raise GraphError(400, "BadRequest", "The skip token is invalid.")
            select, expand = tuple(tok["s"]), tok["x"]
            offset, size, applied = int(tok["o"]), int(tok["n"]), None
        else:
            select, expand = self._select(params), self._expand(params)
            offset = _int_param(params, "$skip", 0)
            size, applied = self._page_size(params, prefer, DEFAULT_LIST_PAGE, MAX_TOP)
        items = [i for i in folder.items.values() if i.kind == "contact"]
        page = items[offset:offset + size]
        body: dict[str, Any] = {"@odata.context": f"{self.meta}/contacts",
                                "value": [self._render(i, select, expand) for i in page]}
        if offset + size < len(items):
            nxt = self.tenant.seal({"t": "list", "f": folder.ews_id, "o": offset + size,
                                    "n": size, "s": list(select), "x": expand}, urlsafe=True)
            body["@odata.nextLink"] = f"{link_base}?%24skiptoken={quote(nxt, safe='')}"
        headers = {"Preference-Applied": f"odata.maxpagesize={applied}"} if applied else {}
        return GraphReply(200, body, headers, operation, mbx.key)

    def _folders(self, parent: Folder, params: dict[str, str], link_base: str, mbx: Mailbox,
                 operation: str) -> GraphReply:
        subs = parent.children()
        offset = 0
        size = DEFAULT_LIST_PAGE
        if "$skiptoken" in params:
            tok = self.tenant.unseal(params["$skiptoken"], urlsafe=True)
            if tok is None or tok.get("t") != "folders":
                raise GraphError(400, "BadRequest", "The skip token is invalid.")
            offset, size = int(tok["o"]), int(tok["n"])
        elif "$top" in params:
            size = max(1, min(_int_param(params, "$top", DEFAULT_LIST_PAGE), MAX_TOP))
        page = subs[offset:offset + size]
        body: dict[str, Any] = {"@odata.context": f"{self.meta}/contactFolders",
                                "value": [folder_json(f) for f in page]}
        if offset + size < len(subs):
            nxt = self.tenant.seal({"t": "folders", "o": offset + size, "n": size},
                                   urlsafe=True)
            body["@odata.nextLink"] = f"{link_base}?%24skiptoken={quote(nxt, safe='')}"
        return GraphReply(200, body, {}, operation, mbx.key)

    def _delta(self, folder: Folder, params: dict[str, str], prefer: str | None,
               link_base: str, mbx: Mailbox) -> GraphReply:
        token = params.get("$skiptoken") or params.get("$deltatoken")
        if token:
            tok = self.tenant.unseal(token, urlsafe=True)
            if (tok is None or tok.get("t") != "delta" or tok.get("mb") != mbx.key
                    or tok.get("f") != folder.ews_id or tok.get("e") != mbx.epoch):
                raise GraphError(410, "SyncStateNotFound",
                                 "The sync state generation is invalid or has expired. "
                                 "Restart the synchronization with a new delta request.")
            known, cursor, select = int(tok["k"]), int(tok["c"]), tuple(tok["s"])
        else:
            known = cursor = 0
            select = self._select(params)
        pref = _maxpagesize(prefer)
        size = max(1, min(pref, MAX_DELTA_PAGE)) if pref is not None else DEFAULT_DELTA_PAGE
        changes, known, cursor, last = mbx.changes(folder, known, cursor, size,
                                                   kinds=frozenset({"contact"}))
        value: list[dict[str, Any]] = []
        for _kind, obj in changes:
            if isinstance(obj, Tombstone):
                value.append({"@odata.type": "#microsoft.graph.contact", "id": obj.graph_id,
                              "@removed": {"reason": "deleted"}})
            else:
                data = dict(selected_json(obj, select))
                data["@odata.type"] = "#microsoft.graph.contact"
                value.append(data)
        state = self.tenant.seal({"t": "delta", "mb": mbx.key, "f": folder.ews_id, "k": known,
                                  "c": cursor, "s": list(select), "e": mbx.epoch}, urlsafe=True)
        body: dict[str, Any] = {"@odata.context": f"{self.meta}/contacts/delta",
                                "value": value}
        if last:
            body["@odata.deltaLink"] = f"{link_base}?%24deltatoken={quote(state, safe='')}"
        else:
            body["@odata.nextLink"] = f"{link_base}?%24skiptoken={quote(state, safe='')}"
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if pref is not None else {}
        return GraphReply(200, body, headers, "delta", mbx.key)


    def _folder_delta(self, params: dict[str, str], prefer: str | None, link_base: str,
                      mbx: Mailbox) -> GraphReply:
        """``contactFolders/delta``: every contact folder of the mailbox (the default one
        too, whose parent is the mailbox root), then changes; deleted ones as ``@removed``."""
        token = params.get("$skiptoken") or params.get("$deltatoken")
        if token:
            tok = self.tenant.unseal(token, urlsafe=True)
            if (tok is None or tok.get("t") != "fdelta" or tok.get("mb") != mbx.key
                    or tok.get("e") != mbx.epoch
                    or tok.get("g", 0) != self.link_epoch.get(mbx.key, 0)):
                raise GraphError(410, "SyncStateNotFound",
                                 "The sync state generation is invalid or has expired. "
                                 "Restart the synchronization with a new delta request.")
            known, offset, upto = int(tok["k"]), int(tok["o"]), int(tok["u"])
        else:
            known, offset, upto = 0, 0, -1
        gen = self.link_epoch.get(mbx.key, 0)
        pref = _maxpagesize(prefer)
        size = max(1, min(pref, MAX_DELTA_PAGE)) if pref is not None else DEFAULT_DELTA_PAGE
        with self.tenant.lock:
            changes, seq = mbx.hierarchy_changes(mbx.msgfolderroot, known)
        upto = seq if upto < 0 else upto
        found = [(kind, f) for kind, f in changes if f.is_contact_folder]
        value: list[dict[str, Any]] = []
        for kind, f in found[offset:offset + size]:
            if kind == "delete":
                value.append({"id": f.graph_id, "@removed": {"reason": "deleted"}})
            else:
                value.append(folder_json(f))
        body: dict[str, Any] = {"@odata.context": f"{self.meta}/contactFolders/delta",
                                "value": value}
        if offset + size < len(found):
            nxt = self.tenant.seal({"t": "fdelta", "mb": mbx.key, "e": mbx.epoch, "k": known,
                                    "o": offset + size, "u": upto, "g": gen}, urlsafe=True)
            body["@odata.nextLink"] = f"{link_base}?%24skiptoken={quote(nxt, safe='')}"
        else:
            state = self.tenant.seal({"t": "fdelta", "mb": mbx.key, "e": mbx.epoch, "k": upto,
                                      "o": 0, "u": -1, "g": gen}, urlsafe=True)
            body["@odata.deltaLink"] = f"{link_base}?%24deltatoken={quote(state, safe='')}"
        return GraphReply(200, body, {}, "folderDelta", mbx.key)


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name) or default)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", f"Invalid value for {name}.") from exc


def _maxpagesize(prefer: str | None) -> int | None:
    if not prefer:
        return None
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return int(value.strip().strip('"'))
            except ValueError:
                return None
    return None


def error_body(code: str, message: str, request_id: str, client_request_id: str,
               date: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "innerError": {
        "date": date, "request-id": request_id, "client-request-id": client_request_id}}}
    ).encode("utf-8")
