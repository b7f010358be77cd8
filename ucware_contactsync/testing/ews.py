"""The EWS side of the fake: SOAP 1.1 at /EWS/Exchange.asmx, as exchangelib 5.6 speaks it.

Operations: GetFolder, FindFolder, FindItem, GetItem, SyncFolderItems, SyncFolderHierarchy.
Anything else gets a SOAP fault ``ErrorInvalidOperation`` (fast and loud, instead of real
Exchange's schema error that makes exchangelib retry every API version).

Speed: an item's XML is rendered once per requested field set and cached on the item until it
changes, so a 10,000-contact read costs the server little more than string joins
(ews_render.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from lxml import etree

from . import public_folders
from .ews_render import (
    E_NS,
    M_NS,
    SOAP_NS,
    T_NS,
    escape,
    parse_shape,
    render_folder,
    render_item,
)
from .tenant import Folder, Mailbox, Tenant, Tombstone

_S, _M, _T = f"{{{SOAP_NS}}}", f"{{{M_NS}}}", f"{{{T_NS}}}"
PAGE_CAP = 1000  # Exchange Online's EWSFindCountLimit per page


# Untrusted bodies: no entity expansion, no network, no huge trees beyond our needs.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          remove_blank_text=True)

MESSAGES = {
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
    "ErrorImpersonateUserDenied":
        "The account does not have permission to impersonate the requested user.",
    "ErrorInvalidSyncStateData": "Synchronization state data is corrupt or otherwise invalid.",
    "ErrorItemNotFound": "The specified object was not found in the store., "
                         "The process failed to get the correct properties.",
    "ErrorFolderNotFound": "The specified folder could not be found in the store.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorInvalidExchangeImpersonationHeaderData":
        "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
    "ErrorUnsupportedQueryFilter": "The fake Exchange does not evaluate restrictions.",
    "ErrorSchemaValidation": "The request failed schema validation.",
    "ErrorInvalidOperation": "The fake Exchange does not implement this operation.",
}


class EwsRequestError(Exception):
    """The request body is not a SOAP envelope we can read."""


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    operation: str
    impersonated: str | None  # PrimarySmtpAddress / SmtpAddress / PrincipalName of the header
    has_impersonation: bool
    body: Any  # lxml element of the operation


def parse_request(data: bytes) -> ParsedRequest:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise EwsRequestError(str(exc)) from exc
    body = root.find(f"{_S}Body")
    if body is None or len(body) == 0:
        raise EwsRequestError("no SOAP Body")
    op_el = body[0]
    op = etree.QName(op_el).localname
    smtp = None
    has_imp = False
    header = root.find(f"{_S}Header")
    if header is not None:
        imp = header.find(f"{_T}ExchangeImpersonation")
        if imp is not None:
            has_imp = True
            for tag in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
                el = imp.find(f".//{_T}{tag}")
                if el is not None and el.text:
                    smtp = el.text.strip()
                    break
    return ParsedRequest(op, smtp, has_imp, op_el)


# --- envelopes -------------------------------------------------------------------------------

_ENV_HEAD = ('<?xml version="1.0" encoding="utf-8"?>'
             f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Body>')
_ENV_TAIL = "</s:Body></s:Envelope>"


def envelope(op: str, messages: list[str]) -> bytes:
    return "".join((
        _ENV_HEAD,
        f'<m:{op}Response xmlns:m="{M_NS}" xmlns:t="{T_NS}"><m:ResponseMessages>',
        *messages,
        f"</m:ResponseMessages></m:{op}Response>",
        _ENV_TAIL,
    )).encode("utf-8")


def soap_fault(code: str, message: str | None = None, back_off_ms: int | None = None) -> bytes:
    """A SOAP fault as Exchange sends it (HTTP 500); exchangelib maps detail/ResponseCode."""
    msg = escape(message or MESSAGES.get(code, code))
    extra = ""
    if back_off_ms is not None:
        extra = (f'<t:MessageXml xmlns:t="{T_NS}"><t:Value Name="BackOffMilliseconds">'
                 f"{back_off_ms}</t:Value></t:MessageXml>")
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}"><s:Body>'
            f'<s:Fault><faultcode xmlns:a="{T_NS}">a:{code}</faultcode>'
            f'<faultstring xml:lang="en-US">{msg}</faultstring><detail>'
            f'<e:ResponseCode xmlns:e="{E_NS}">{code}</e:ResponseCode>'
            f'<e:Message xmlns:e="{E_NS}">{msg}</e:Message>{extra}'
            "</detail></s:Fault></s:Body></s:Envelope>").encode()


def error_message(op: str, code: str, extra: str = "") -> str:
    return (f'<m:{op}ResponseMessage ResponseClass="Error">'
            f"<m:MessageText>{escape(MESSAGES.get(code, code))}</m:MessageText>"
            f"<m:ResponseCode>{code}</m:ResponseCode>"
            f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{extra}"
            f"</m:{op}ResponseMessage>")


def _ok(op: str, inner: str) -> str:
    return (f'<m:{op}ResponseMessage ResponseClass="Success">'
            f"<m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{op}ResponseMessage>")


# --- the operations ---------------------------------------------------------------------------

class Ews:
    """Answers one parsed request for one (already authorised) mailbox."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant

    def handle(self, req: ParsedRequest, mbx: Mailbox) -> tuple[int, bytes]:
        handler = getattr(self, f"op_{req.operation}", None)
        if handler is None:
            return 500, soap_fault("ErrorInvalidOperation",
                                   f"The fake Exchange does not implement {req.operation}.")
        with self.tenant.lock:
            answer: tuple[int, bytes] = handler(req.body, mbx)
            return answer

    # helpers
    def _folder(self, el: Any, mbx: Mailbox) -> Folder | str:
        """A folder from t:FolderId / t:DistinguishedFolderId, else the error code."""
        name = etree.QName(el).localname
        if name == "DistinguishedFolderId":
            did = el.get("Id", "")
            box = el.findtext(f"{_T}Mailbox/{_T}EmailAddress")
            if box and box.strip().lower() != mbx.key:
                other = self.tenant.find_mailbox(box.strip())
                if other is None:
                    return "ErrorNonExistentMailbox"
                mbx = other
            if did == "publicfoldersroot":
                return public_folders.root(self.tenant)
            found = {"root": mbx.root, "msgfolderroot": mbx.msgfolderroot,
                     "contacts": mbx.contacts}.get(did)
            return found if found is not None else "ErrorFolderNotFound"
        fid = el.get("Id", "")
        if not _looks_like_id(fid):
            return "ErrorInvalidIdMalformed"
        found = mbx.folder(fid) or public_folders.find_folder(self.tenant, fid)
        return found if found is not None else "ErrorFolderNotFound"

    def _folder_list(self, container: Any, mbx: Mailbox) -> list[Folder | str]:
        if container is None:
            return []
        return [self._folder(el, mbx) for el in container]

    def op_GetFolder(self, body: Any, mbx: Mailbox) -> tuple[int, bytes]:  # noqa: N802
        out = []
        for f in self._folder_list(body.find(f"{_M}FolderIds"), mbx):
            if isinstance(f, str):
                out.append(error_message("GetFolder", f, "<m:Folders/>"))
            else:
                out.append(_ok("GetFolder", f"<m:Folders>{render_folder(f)}</m:Folders>"))
        return 200, envelope("GetFolder", out)

    def op_FindFolder(self, body: Any, mbx: Mailbox) -> tuple[int, bytes]:  # noqa: N802
        traversal = body.get("Traversal", "Shallow")
        offset, max_entries = _paging(body.find(f"{_M}IndexedPageFolderView"))
        out = []
        for f in self._folder_list(body.find(f"{_M}ParentFolderIds"), mbx):
            if isinstance(f, str):
                out.append(error_message("FindFolder", f))
                continue
            subs = f.descendants() if traversal == "Deep" else f.children()
            page = subs[offset:offset + max_entries]
            nxt = offset + len(page)
            last = nxt >= len(subs)
            out.append(_ok("FindFolder", (
                f'<m:RootFolder IndexedPagingOffset="{nxt}" TotalItemsInView="{len(subs)}" '
                f'IncludesLastItemInRange="{"true" if last else "false"}"><t:Folders>'
                + "".join(render_folder(s) for s in page) + "</t:Folders></m:RootFolder>")))
        return 200, envelope("FindFolder", out)

    def op_FindItem(self, body: Any, mbx: Mailbox) -> tuple[int, bytes]:  # noqa: N802
        shape = parse_shape(body.find(f"{_M}ItemShape"))
        offset, max_entries = _paging(body.find(f"{_M}IndexedPageItemView"))
        if body.find(f"{_M}Restriction") is not None:
            # Fail loudly rather than return unfiltered results the client would trust.
            return 200, envelope("FindItem", [error_message("FindItem",
                                                            "ErrorUnsupportedQueryFilter")])
        out = []
        for f in self._folder_list(body.find(f"{_M}ParentFolderIds"), mbx):
            if isinstance(f, str):
                out.append(error_message("FindItem", f))
                continue
            items = list(f.items.values())
            page = items[offset:offset + max_entries]
            nxt = offset + len(page)
            last = nxt >= len(items)
            out.append(_ok("FindItem", (
                f'<m:RootFolder IndexedPagingOffset="{nxt}" TotalItemsInView="{len(items)}" '
                f'IncludesLastItemInRange="{"true" if last else "false"}"><t:Items>'
                + "".join(render_item(i, shape) for i in page) + "</t:Items></m:RootFolder>")))
        return 200, envelope("FindItem", out)

    def op_GetItem(self, body: Any, mbx: Mailbox) -> tuple[int, bytes]:  # noqa: N802
        shape = parse_shape(body.find(f"{_M}ItemShape"))
        ids = body.find(f"{_M}ItemIds")
        out = []
        for el in ids if ids is not None else []:
            iid = el.get("Id", "")
            if not _looks_like_id(iid):
                out.append(error_message("GetItem", "ErrorInvalidIdMalformed", "<m:Items/>"))
                continue
            item = mbx.items.get(iid) or public_folders.find_item(self.tenant, iid)
            if item is None:
                out.append(error_message("GetItem", "ErrorItemNotFound", "<m:Items/>"))
            else:
                out.append(_ok("GetItem", f"<m:Items>{render_item(item, shape)}</m:Items>"))
        return 200, envelope("GetItem", out)

    def op_SyncFolderItems(self, body: Any, mbx: Mailbox) -> tuple[int, bytes]:  # noqa: N802
        op = "SyncFolderItems"
        # Error replies still need SyncState + IncludesLast…, or exchangelib cannot parse them.
        err_tail = ("<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
                    "<m:Changes/>")
        shape = parse_shape(body.find(f"{_M}ItemShape"))
        try:
            max_changes = int(body.findtext(f"{_M}MaxChangesReturned") or "0")
        except ValueError:
            max_changes = 0
        if not 1 <= max_changes <= 512:
            return 500, soap_fault("ErrorSchemaValidation",
                                   "The request failed schema validation: MaxChangesReturned "
                                   "must be between 1 and 512.")
        sync_id = body.find(f"{_M}SyncFolderId")
        folder = self._folder(sync_id[0], mbx) if sync_id is not None and len(sync_id) else \
            "ErrorFolderNotFound"
        if isinstance(folder, str):
            return 200, envelope(op, [error_message(op, folder, err_tail)])
        if public_folders.is_public(self.tenant, folder):
            return 200, envelope(op, [error_message(op, "ErrorInvalidOperation", err_tail)
                                      .replace(escape(MESSAGES["ErrorInvalidOperation"]),
                                               public_folders.REFUSED)])
        state_text = (body.findtext(f"{_M}SyncState") or "").strip()
        known = cursor = 0
        if state_text:
            state = self.tenant.unseal(state_text)
            if (state is None or state.get("t") != "items" or state.get("mb") != mbx.key
                    or state.get("f") != folder.ews_id or state.get("e") != mbx.epoch):
                return 200, envelope(op, [error_message(op, "ErrorInvalidSyncStateData",
                                                        err_tail)])
            known, cursor = int(state["k"]), int(state["c"])
        ignore_el = body.find(f"{_M}Ignore")
        ignore = {el.get("Id") for el in ignore_el} if ignore_el is not None else set()
        changes, known, cursor, last = mbx.changes(folder, known, cursor, max_changes)
        new_state = self.tenant.seal({"t": "items", "mb": mbx.key, "f": folder.ews_id,
                                      "k": known, "c": cursor, "e": mbx.epoch})
        parts = []
        for kind, obj in changes:
            if obj.ews_id in ignore:
                continue
            if isinstance(obj, Tombstone):
                parts.append(f'<t:Delete><t:ItemId Id="{obj.ews_id}"/></t:Delete>')
            else:
                tag = "Create" if kind == "create" else "Update"
                parts.append(f"<t:{tag}>{render_item(obj, shape)}</t:{tag}>")
        return 200, envelope(op, [_ok(op, (
            f"<m:SyncState>{new_state}</m:SyncState>"
            f"<m:IncludesLastItemInRange>{'true' if last else 'false'}"
            "</m:IncludesLastItemInRange><m:Changes>" + "".join(parts) + "</m:Changes>"))])

    def op_SyncFolderHierarchy(self, body: Any, mbx: Mailbox) -> tuple[int, bytes]:  # noqa: N802
        op = "SyncFolderHierarchy"
        err_tail = ("<m:SyncState/><m:IncludesLastFolderInRange>true"
                    "</m:IncludesLastFolderInRange><m:Changes/>")
        sync_id = body.find(f"{_M}SyncFolderId")
        base: Folder | str = mbx.root
        if sync_id is not None and len(sync_id):
            base = self._folder(sync_id[0], mbx)
        if isinstance(base, str):
            return 200, envelope(op, [error_message(op, base, err_tail)])
        state_text = (body.findtext(f"{_M}SyncState") or "").strip()
        known = 0
        if state_text:
            state = self.tenant.unseal(state_text)
            if (state is None or state.get("t") != "hierarchy" or state.get("mb") != mbx.key
                    or state.get("f") != base.ews_id or state.get("e") != mbx.epoch):
                return 200, envelope(op, [error_message(op, "ErrorInvalidSyncStateData",
                                                        err_tail)])
            known = int(state["k"])
        changes, now = mbx.hierarchy_changes(base, known)
        new_state = self.tenant.seal({"t": "hierarchy", "mb": mbx.key, "f": base.ews_id,
                                      "k": now, "e": mbx.epoch})
        parts = []
        for kind, f in changes:
            if kind == "delete":
                parts.append(f'<t:Delete><t:FolderId Id="{f.ews_id}"/></t:Delete>')
            else:
                tag = "Create" if kind == "create" else "Update"
                parts.append(f"<t:{tag}>{render_folder(f)}</t:{tag}>")
        return 200, envelope(op, [_ok(op, (
            f"<m:SyncState>{new_state}</m:SyncState>"
            "<m:IncludesLastFolderInRange>true</m:IncludesLastFolderInRange>"
            "<m:Changes>" + "".join(parts) + "</m:Changes>"))])


def _paging(view: Any) -> tuple[int, int]:
    if view is None:
        return 0, PAGE_CAP
    try:
        offset = int(view.get("Offset", "0"))
        max_entries = int(view.get("MaxEntriesReturned", str(PAGE_CAP)))
    except ValueError:
        return 0, PAGE_CAP
    return max(offset, 0), max(1, min(max_entries, PAGE_CAP))


def _looks_like_id(value: str) -> bool:
    """Exchange rejects ids that are not base64 of an entry id (ErrorInvalidIdMalformed).

    Strict standard base64: a Graph (base64url) id sent to EWS is malformed, as in Exchange.
    """
    if not value or len(value) < 16:
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True

