"""A shared mailbox's contacts, or one of its contact folders with the folders below it.

The whole Contacts tree is what the personal sources read already (with subfolders). For one
folder (``shared add … --folder NAME``), the Graph source starts its folder walk at that folder
instead of at Contacts; the EWS source finds the folders with FindFolder and reads each with
SyncFolderItems. A folder path may name nested folders with ``/`` (``Kunden/Nord``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from exchangelib.folders import Contacts, Root

from ..settings import Settings
from .auth import TokenProvider
from .base import ContactSource, Kind, MailboxRead, SourceError
from .ews import EwsSource
from .graph import CONTACTS, GraphSource, _Call, _seg

FOLDER_HINT = ("check the folder name in Outlook; 'shared add MAILBOX --phonebook TITLE "
               "--folder NAME' names a folder below Contacts ('Kunden/Nord' for nested ones)")


class GraphFolderSource(GraphSource):
    """GraphSource that reads ``folder`` (a path below Contacts) and its subfolders."""

    def __init__(self, settings: Settings, folder: str, tokens: TokenProvider | None = None
                 ) -> None:
        super().__init__(settings, tokens=tokens, include_subfolders=True)
        self.path = [p for p in folder.strip("/").split("/") if p.strip()]

    def _folders(self, call: _Call) -> list[str]:
        fid = CONTACTS
        for name in self.path:
            url = (f"{call.base}/contactFolders" if fid == CONTACTS
                   else f"{call.base}/contactFolders/{_seg(fid)}/childFolders")
            match = [str(f["id"]) for page in call.pages(url, {"$select": "id,displayName",
                                                               "$top": "1000"})
                     for f in page.get("value", []) if f.get("displayName") == name]
            if len(match) != 1:
                raise _not_one(call.mailbox, name, len(match))
            fid = match[0]
        found: list[str] = []
        stack = [fid]
        while stack:
            current = stack.pop()
            found.append(current)
            children = [str(f["id"]) for page in call.pages(
                f"{call.base}/contactFolders/{_seg(current)}/childFolders",
                {"$select": "id,displayName", "$top": "1000"}) for f in page.get("value", [])]
            stack.extend(reversed(children))
        return found


def open_shared(settings: Settings, api: str, folder: str | None,
                tokens: TokenProvider | None) -> ContactSource:
    """The source for a shared mailbox phonebook on ``api`` (graph | ews)."""
    if api == "graph":
        if folder:
            return GraphFolderSource(settings, folder, tokens=tokens)
        return GraphSource(settings, tokens=tokens, include_subfolders=True)
    if folder and api == "ews":
        return EwsFolderSource(settings, folder, tokens=tokens)
    if folder:
        raise SourceError(Kind.MAILBOX_MISSING, f"a folder of a shared mailbox cannot be read "
                          f"through {api}", "remove --folder, or use api=graph")
    from .registry import SOURCES

    cls = SOURCES[api].load()
    return cls(settings, tokens=tokens, include_subfolders=True)


class EwsFolderSource(EwsSource):
    """EwsSource that reads ``folder`` (a path below Contacts) and its subfolders: the folders
    are found with FindFolder, each is read with SyncFolderItems as the personal sync does."""

    def __init__(self, settings: Settings, folder: str, tokens: TokenProvider | None = None
                 ) -> None:
        super().__init__(settings, tokens=tokens, include_subfolders=True)
        self.path = [p for p in folder.strip("/").split("/") if p.strip()]

    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        from .public_folders import children

        deadline = time.monotonic() + self.max_wait
        account = self._account(mailbox)
        states = states or {}
        read = MailboxRead(api=self.api, full=not states)
        root = self._call(mailbox, deadline, lambda: Root.get_distinguished(account=account))
        folder: Any = self._call(mailbox, deadline,
                                 lambda: Contacts.get_distinguished(root=root))
        read.requests += 2
        for name in self.path:
            match = [c for c in children(self, account, mailbox, deadline, folder, read)
                     if c.name == name]
            if len(match) != 1:
                raise _not_one(mailbox, name, len(match))
            folder = match[0]
        ids: list[str] = []
        stack = [folder]
        while stack:
            current = stack.pop()
            ids.append(str(current.id))
            if current.child_folder_count != 0:
                stack.extend(reversed(children(self, account, mailbox, deadline, current,
                                               read)))
        if states and set(states) != set(ids):
            # A folder came or went: only a full read removes the entries of a vanished one.
            raise SourceError(Kind.STATE_INVALID, f"the folders below {'/'.join(self.path)} "
                              f"in {mailbox} changed")
        for fid in ids:
            read.states[fid] = self._sync_folder(account, mailbox, fid, states.get(fid),
                                                 deadline, read)
        return read


def _not_one(mailbox: str, name: str, found: int) -> SourceError:
    """``--folder`` names no folder, or several, at one level of the path."""
    return SourceError(Kind.MAILBOX_MISSING, f"mailbox {mailbox} has {found or 'no'} contact "
                       f"folder(s) named {name!r}", FOLDER_HINT)
