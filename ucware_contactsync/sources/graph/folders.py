"""The contact folders below the default one, kept by ``contactFolders/delta``.

The first read runs a delta round over the mailbox's contact folders and asks for the id of
the default folder (``contactFolders/contacts``); it stores the deltaLink, that id and every
folder's parent as one state (key ``HIERARCHY``). Later reads follow the stored link: an
unchanged hierarchy costs one request, whatever the number of folders. A 410 (or any unusable
link) starts a new round; the folders found are then compared with the stored contact states,
so a lost folder link costs one round, not a full read of the contacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..base import Kind, SourceError
from .client import MailboxCall, Req, log, prepared
from .tasks import Task

HIERARCHY = "#hierarchy"  # states key of the folder delta (no Graph id starts with '#')


@dataclass
class Tree:
    link: str  # deltaLink of contactFolders/delta
    root: str  # Graph id of the default contacts folder
    parents: dict[str, str]  # every contact folder seen -> its parent's id

    def dumps(self) -> str:
        return json.dumps({"link": self.link, "root": self.root, "parents": self.parents},
                          separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Tree | None:
        try:
            data = json.loads(text)
            tree = cls(str(data["link"]), str(data["root"]),
                       {str(k): str(v) for k, v in dict(data["parents"]).items()})
        except (ValueError, KeyError, TypeError):
            return None
        return tree

    def below_root(self) -> list[str]:
        """Ids of the folders below the default one: depth first, parents before children."""
        children: dict[str, list[str]] = {}
        for fid, parent in self.parents.items():
            children.setdefault(parent, []).append(fid)
        out: list[str] = []
        stack = list(reversed(children.get(self.root, [])))
        while stack:
            fid = stack.pop()
            if fid in out:  # a cycle cannot happen in Exchange; do not loop on bad data
                continue
            out.append(fid)
            stack.extend(reversed(children.get(fid, [])))
        return out


def tree_task(call: MailboxCall, stored: str | None) -> Task:
    """Follow the stored folder delta link (or start a new round); returns the new Tree."""
    tree = Tree.loads(stored) if stored else None
    if tree is not None:
        parents = dict(tree.parents)
        try:
            link = yield from _round(call, tree.link, parents, state_link=True)
            return Tree(link, tree.root, parents)
        except SourceError as exc:
            if exc.kind is not Kind.STATE_INVALID:
                raise
            log.info("graph %s: folder delta link no longer valid (%s); listing the folders "
                     "again", call.mailbox, exc.message)
    parents = {}
    root, page = yield [
        Req(call, prepared(f"{call.base}/contactFolders/contacts", {"$select": "id"})),
        Req(call, prepared(f"{call.base}/contactFolders/delta",
                           {"$select": "id,parentFolderId"}))]
    link = yield from _round(call, None, parents, first=page)
    return Tree(link, str(root["id"]), parents)


def _round(call: MailboxCall, url: str | None, parents: dict[str, str],
           state_link: bool = False, first: dict[str, Any] | None = None) -> Task:
    """Pages of one folder delta round applied to ``parents``; returns the deltaLink."""
    page = first if first is not None else (yield Req(call, str(url), state_link=state_link))
    while True:
        for data in page.get("value", []):
            fid = str(data.get("id", ""))
            if not fid:
                continue
            if "@removed" in data:
                parents.pop(fid, None)
            else:
                parents[fid] = str(data.get("parentFolderId") or "")
        if page.get("@odata.deltaLink"):
            return str(page["@odata.deltaLink"])
        nxt = page.get("@odata.nextLink")
        if not nxt:
            raise SourceError(Kind.TRANSIENT, f"Graph ended the folder delta round of "
                              f"{call.mailbox} without a deltaLink")
        page = yield Req(call, call.checked(str(nxt)))
