"""A shared mailbox's contacts, or one of its contact folders with the folders below it.

The whole Contacts tree is what the personal sources read already (with subfolders). For one
folder (``shared add … --folder NAME``), the Graph source starts its folder walk at that folder
instead of at Contacts. A folder path may name nested folders with ``/`` (``Kunden/Nord``).
"""

from __future__ import annotations

from ..settings import Settings
from .auth import TokenProvider
from .base import ContactSource, Kind, SourceError
from .graph import CONTACTS, GraphSource, _Call, _seg


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
                raise SourceError(Kind.MAILBOX_MISSING, f"mailbox {call.mailbox} has "
                                  f"{'no' if not match else len(match)} contact folder(s) "
                                  f"named {name!r}", "check the folder name with Outlook; "
                                  "'shared add MAILBOX --phonebook TITLE --folder NAME' "
                                  "names a folder below Contacts")
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
    if folder:
        raise SourceError(Kind.MAILBOX_MISSING, "a folder of a shared mailbox can only be read "
                          f"through Microsoft Graph so far, not through {api}",
                          "remove --folder to read the whole Contacts tree over EWS, or use "
                          "api=graph")
    from .registry import SOURCES

    cls = SOURCES[api].load()
    return cls(settings, tokens=tokens, include_subfolders=True)
