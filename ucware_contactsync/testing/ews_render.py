"""How the fake EWS writes XML: namespaces, escaping, the requested shape of an item, and the
rendering of items and folders (cached on the item until it changes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape as _xml_escape

from lxml import etree

from ucware_contactsync.contact import EWS_LABELS

from .tenant import Folder, Item

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
E_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
_T = f"{{{T_NS}}}"

LABEL_OF_TYPE = {v: k for k, v in EWS_LABELS.items()}  # our type -> EWS PhoneNumberKey
EMAIL_KEYS = ("EmailAddress1", "EmailAddress2", "EmailAddress3")

# Characters XML 1.0 cannot carry. Exchange writes them as character references anyway
# ("&#x1;"), which strict parsers refuse and exchangelib's recovering parser keeps.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(value: str) -> str:
    """Text for an element or attribute, control characters as Exchange writes them."""
    return _NOT_XML.sub(lambda m: f"&#x{ord(m.group()):X};", _xml_escape(value))


# --- shapes and rendering ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Shape:
    """What the client asked for: BaseShape plus AdditionalProperties (hashable: cache key)."""

    base: str
    fields: frozenset[str]

    def wants(self, uri: str) -> bool:
        return self.base != "IdOnly" or uri in self.fields

    def wants_indexed(self, uri: str, plural: str, index: str) -> bool:
        return (self.base != "IdOnly" or plural in self.fields
                or f"{uri}:{index}" in self.fields or uri in self.fields)


def parse_shape(el: Any) -> Shape:
    if el is None:
        return Shape("IdOnly", frozenset())
    base = (el.findtext(f"{_T}BaseShape") or "IdOnly").strip()
    fields: set[str] = set()
    props = el.find(f"{_T}AdditionalProperties")
    if props is not None:
        for p in props:
            name = etree.QName(p).localname
            uri = p.get("FieldURI", "")
            if name == "FieldURI":
                fields.add(uri)
            elif name == "IndexedFieldURI":
                fields.add(f"{uri}:{p.get('FieldIndex', '')}")
    return Shape(base, frozenset(fields))


def _text(tag: str, value: str) -> str:
    return f"<t:{tag}>{escape(value)}</t:{tag}>" if value else ""


def _ts(d: Any) -> str:
    return str(d.strftime("%Y-%m-%dT%H:%M:%SZ"))


def render_item(item: Item, shape: Shape) -> str:
    """XML of one item for ``shape``; cached until the item changes."""
    key = ("ews", shape)
    cached = item.cache.get(key)
    if isinstance(cached, str):
        return cached
    w = shape.wants
    folder = item.folder
    out = [f'<t:ItemId Id="{item.ews_id}" ChangeKey="{item.change_key}"/>']
    if w("item:ParentFolderId"):
        out.append(f'<t:ParentFolderId Id="{folder.ews_id}" ChangeKey="{folder.change_key}"/>')
    is_dl = item.kind == "distribution_list"
    if w("item:ItemClass"):
        out.append(f"<t:ItemClass>{'IPM.DistList' if is_dl else 'IPM.Contact'}</t:ItemClass>")
    if w("item:Subject"):
        out.append(_text("Subject", item.display_name))
    if w("item:Body") and item.notes:
        out.append(f'<t:Body BodyType="Text">{escape(item.notes)}</t:Body>')
    if w("item:Categories") and item.categories:
        out.append("<t:Categories>" + "".join(_text("String", c) for c in item.categories)
                   + "</t:Categories>")
    if w("item:DateTimeCreated"):
        out.append(f"<t:DateTimeCreated>{_ts(item.created)}</t:DateTimeCreated>")
    if w("item:LastModifiedTime"):
        out.append(f"<t:LastModifiedTime>{_ts(item.modified)}</t:LastModifiedTime>")
    if is_dl:
        if w("contacts:DisplayName"):
            out.append(_text("DisplayName", item.display_name))
        if w("contacts:FileAs"):
            out.append(_text("FileAs", item.display_name))
        if w("contacts:ContactSource"):
            out.append("<t:ContactSource>Store</t:ContactSource>")
        if w("distributionlist:Members"):
            out.append("<t:Members>")
            for i, m in enumerate(item.members):
                out.append(
                    f'<t:Member Key="{i:08X}"><t:Mailbox>{_text("Name", m.name)}'
                    f"{_text('EmailAddress', m.email)}<t:RoutingType>SMTP</t:RoutingType>"
                    "<t:MailboxType>OneOff</t:MailboxType></t:Mailbox>"
                    "<t:Status>Normal</t:Status></t:Member>")
            out.append("</t:Members>")
        xml = "<t:DistributionList>" + "".join(out) + "</t:DistributionList>"
        item.cache[key] = xml
        return xml
    if w("contacts:FileAs"):
        out.append(_text("FileAs", item.file_as))
    if w("contacts:DisplayName"):
        out.append(_text("DisplayName", item.display_name))
    if w("contacts:GivenName"):
        out.append(_text("GivenName", item.given_name))
    if w("contacts:CompanyName"):
        out.append(_text("CompanyName", item.company))
    emails = [(k, e) for k, e in zip(EMAIL_KEYS, item.emails, strict=False)
              if shape.wants_indexed("contacts:EmailAddress", "contacts:EmailAddresses", k)]
    if emails:
        out.append("<t:EmailAddresses>" + "".join(
            f'<t:Entry Key="{k}">{escape(e)}</t:Entry>' for k, e in emails)
            + "</t:EmailAddresses>")
    phones = [(LABEL_OF_TYPE[t], n) for t, n in [*item.numbers.items(), *item.extra_numbers]
              if shape.wants_indexed("contacts:PhoneNumber", "contacts:PhoneNumbers",
                                     LABEL_OF_TYPE[t])]
    if phones:
        out.append("<t:PhoneNumbers>" + "".join(
            f'<t:Entry Key="{k}">{escape(n)}</t:Entry>' for k, n in phones)
            + "</t:PhoneNumbers>")
    if w("contacts:ContactSource"):
        out.append("<t:ContactSource>Store</t:ContactSource>")
    if w("contacts:Department"):
        out.append(_text("Department", item.department))
    if w("contacts:JobTitle"):
        out.append(_text("JobTitle", item.job_title))
    if w("contacts:Surname"):
        out.append(_text("Surname", item.surname))
    xml = "<t:Contact>" + "".join(out) + "</t:Contact>"
    item.cache[key] = xml
    return xml


def render_folder(folder: Folder) -> str:
    tag = "ContactsFolder" if folder.is_contact_folder else "Folder"
    parts = [f'<t:{tag}><t:FolderId Id="{folder.ews_id}" ChangeKey="{folder.change_key}"/>']
    if folder.parent is not None:
        p = folder.parent
        parts.append(f'<t:ParentFolderId Id="{p.ews_id}" ChangeKey="{p.change_key}"/>')
    if folder.folder_class:
        parts.append(f"<t:FolderClass>{folder.folder_class}</t:FolderClass>")
    parts.append(_text("DisplayName", folder.name) if folder.name
                 else "<t:DisplayName></t:DisplayName>")
    parts.append(f"<t:TotalCount>{len(folder.items)}</t:TotalCount>")
    parts.append(f"<t:ChildFolderCount>{len(folder.children())}</t:ChildFolderCount>")
    if folder.kind == "contacts":
        parts.append("<t:DistinguishedFolderId>contacts</t:DistinguishedFolderId>")
    parts.append(f"</t:{tag}>")
    return "".join(parts)
