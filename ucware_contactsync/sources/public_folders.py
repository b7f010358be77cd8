"""Public folders of an on-premises Exchange Server, through EWS (exchangelib).

SyncFolderItems and SyncFolderHierarchy do not work on public folders (Exchange refuses
them), so there is no change feed: each run lists the items of the folder and its subfolders
with FindItem (ids and change keys only, one cheap page per 1,000 items) and compares a digest
of them per folder with the one stored after the previous run. An unchanged public folder
costs those FindItem pages and writes nothing; when any folder changed, every item is read
with GetItem (100 a request) and the writer stores only what differs.

Exchange Online is refused before any request: Microsoft restricts programmatic access to
public folders there, and EWS ends on 2027-04-01.

The requests impersonate one mailbox (``shared add --public-folder PATH MAILBOX``, else the
first user the sync selects): its user needs read access to the folder (e.g. Reviewer).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from exchangelib import Account
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder as EwsFolder
from exchangelib.folders import PublicFoldersRoot
from exchangelib.items import Contact as EwsContact
from exchangelib.properties import ItemId
from exchangelib.services import FindFolder, FindItem, GetItem

from ..settings import Settings
from .auth import TokenProvider
from .base import Kind, MailboxRead, SourceError, canonical_id
from .ews import _ADDITIONAL, EwsSource, to_contact

GET_BATCH = 100
_FOLDER_FIELDS = {FieldPath(field=EwsFolder.get_field_by_fieldname(n))
                  for n in ("name", "child_folder_count")}
ONLINE = ("public folders can only be read from on-premises Exchange: Microsoft restricts "
          "programmatic access to public folders in Exchange Online")


class PublicFolderSource(EwsSource):
    """Reads one public folder (a path below the root) and its subfolders."""

    def __init__(self, settings: Settings, path: str, tokens: TokenProvider | None = None,
                 include_subfolders: bool = True, max_wait: float = 300.0) -> None:
        if settings.office365:
            raise SourceError(Kind.ACCESS_DENIED, ONLINE, "move the contacts into a shared "
                              "mailbox and use 'shared add MAILBOX --phonebook TITLE'")
        super().__init__(settings, tokens=tokens, include_subfolders=include_subfolders,
                         max_wait=max_wait)
        self.path = [p for p in path.strip("/").split("/") if p]

    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        deadline = time.monotonic() + self.max_wait
        account = self._account(mailbox)
        read = MailboxRead(api=self.api, full=True)
        folders = self._folders(account, mailbox, deadline, read)
        ids: list[tuple[str, str]] = []
        for fid, folder in folders:
            def find(f: Any = folder) -> list[Any]:
                return list(FindItem(account=account).call(
                    folders=[f], additional_fields=None, restriction=None, order_fields=None,
                    shape="IdOnly", query_string=None, depth="Shallow", calendar_view=None,
                    max_items=None, offset=0))

            found = self._call(mailbox, deadline, find)
            read.requests += 1
            pairs = sorted((str(i), str(c)) for i, c in _pairs(found))
            read.states[canonical_id(fid)] = _digest(pairs)
            ids.extend(pairs)
        if states and dict(states) == read.states:
            read.full = False  # nothing changed: nothing to read, nothing to write
            return read
        for start in range(0, len(ids), GET_BATCH):
            batch = [ItemId(id=i, changekey=c) for i, c in ids[start:start + GET_BATCH]]

            def get(b: list[ItemId] = batch) -> list[Any]:
                return list(GetItem(account=account).call(
                    items=b, additional_fields=_ADDITIONAL, shape="IdOnly"))

            items = self._call(mailbox, deadline, get)
            read.requests += 1
            for item in items:
                if isinstance(item, EwsContact):
                    read.contacts.append(to_contact(item, None))
                elif not isinstance(item, Exception):
                    read.skipped += 1  # distribution lists; a vanished item is simply gone
        return read

    def check(self, mailbox: str) -> None:
        deadline = time.monotonic() + 60.0
        self._folders(self._account(mailbox), mailbox, deadline, MailboxRead(api=self.api,
                                                                              full=True))

    def _folders(self, account: Account, mailbox: str, deadline: float, read: MailboxRead
                 ) -> list[tuple[str, Any]]:
        """(id, folder) of the public folder at ``path`` and every folder below it."""
        folder: Any = self._call(mailbox, deadline,
                                 lambda: PublicFoldersRoot.get_distinguished(account=account))
        read.requests += 1
        for name in self.path:
            children = self._children(account, mailbox, deadline, folder, read)
            match = [c for c in children if c.name == name]
            if len(match) != 1:
                where = "/".join(self.path[:self.path.index(name) + 1])
                raise SourceError(Kind.MAILBOX_MISSING, f"public folder {where!r} "
                                  f"{'not found' if not match else 'is ambiguous'}",
                                  f"check the path, and that {mailbox} may read it")
            folder = match[0]
        out = []
        stack = [folder]
        while stack:
            current = stack.pop()
            out.append((str(current.id), current))
            if self.include_subfolders and current.child_folder_count != 0:
                stack.extend(reversed(self._children(account, mailbox, deadline, current,
                                                     read)))
        return out

    def _children(self, account: Account, mailbox: str, deadline: float, folder: Any,
                  read: MailboxRead) -> list[Any]:
        return children(self, account, mailbox, deadline, folder, read)


def children(source: EwsSource, account: Account, mailbox: str, deadline: float, folder: Any,
             read: MailboxRead) -> list[Any]:
    """The folders right below ``folder`` (FindFolder, Shallow: Exchange does not traverse
    public folders deeply), with their names and child counts."""
    found = source._call(mailbox, deadline, lambda: list(FindFolder(account=account).call(
        folders=[folder], additional_fields=_FOLDER_FIELDS, restriction=None,
        shape="IdOnly", depth="Shallow", max_items=None, offset=0)))
    read.requests += 1
    for f in found:
        if isinstance(f, Exception):
            raise source._translate(mailbox, f)
    return list(found)


def _pairs(found: list[Any]) -> list[tuple[str, str]]:
    out = []
    for entry in found:
        if isinstance(entry, Exception):
            raise entry
        out.append((entry[0], entry[1]))
    return out


def _digest(pairs: list[tuple[str, str]]) -> str:
    """One value for a folder's (id, change key) pairs: equal means nothing changed."""
    h = hashlib.sha256()
    for item_id, change_key in pairs:
        h.update(f"{item_id}\0{change_key}\n".encode())
    return f"{len(pairs)}:{h.hexdigest()}"
