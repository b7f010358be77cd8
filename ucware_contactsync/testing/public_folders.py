"""On-premises public folders for the fake EWS: one public folder store per tenant.

The store is a ``Mailbox`` that no user owns; its ``msgfolderroot`` answers to the
distinguished id ``publicfoldersroot`` (IPM_SUBTREE). GetFolder, FindFolder (Shallow: Exchange
does not traverse public folders deeply), FindItem and GetItem reach its folders and items
from any impersonated mailbox; SyncFolderItems and SyncFolderHierarchy are refused, as
Exchange documents ("not supported for use against … Public Folders").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tenant import Folder, Item, Mailbox, Tenant

REFUSED = "Public folders cannot be synchronized; use FindItem."


def store(tenant: Tenant) -> Mailbox:
    """The tenant's public folder store (made on first use)."""
    from .tenant import Mailbox

    with tenant.lock:
        pf = tenant.public_folders
        if pf is None:
            pf = Mailbox(tenant, f"publicfolders@{tenant.domain}", "Public Folders", True,
                         False)
            # A public folder tree has no Contacts folder of its own.
            pf.contacts.deleted_seq = pf.contacts.created_seq
            tenant.public_folders = pf
        return pf


def root(tenant: Tenant) -> Folder:
    return store(tenant).msgfolderroot


def add_folder(tenant: Tenant, path: str) -> Folder:
    """The public folder at ``path`` ("Firma/Kontakte"), made with its parents if missing."""
    pf = store(tenant)
    with tenant.lock:
        folder = pf.msgfolderroot
        for name in [p for p in path.split("/") if p]:
            child = next((c for c in folder.children() if c.name == name), None)
            folder = child if child is not None else pf.add_folder(name, parent=folder)
        return folder


def find_folder(tenant: Tenant, folder_id: str) -> Folder | None:
    pf = tenant.public_folders
    return None if pf is None else pf.folder(folder_id)


def find_item(tenant: Tenant, item_id: str) -> Item | None:
    pf = tenant.public_folders
    return None if pf is None else pf.items.get(item_id)


def is_public(tenant: Tenant, folder: Folder) -> bool:
    return folder.mailbox is tenant.public_folders
