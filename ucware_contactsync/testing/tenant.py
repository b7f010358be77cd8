"""In-memory model of a Microsoft 365 tenant: apps, mailboxes, contact folders, contacts.

Ids look and behave like Exchange's
-----------------------------------
* Every item and folder owns one random-but-seeded binary entry id of about 70 bytes.
* The **EWS** ``ItemId``/``FolderId`` is that blob in standard base64 (``+``, ``/``, ``=`` padding).
* The **Graph** ``id`` of the same object is the SAME bytes in base64url (``-``, ``_``, padding
  kept), as Outlook REST / Graph does. So ``graph_id == ews_id.replace("+", "-").replace("/", "_")``
  and back. The sync relies on this to switch a tenant from EWS to Graph without duplicates.
  Most ids contain ``+`` or ``/`` so a client that forgets the conversion is caught.
* Change keys are base64 strings, new on every update; EWS ``ChangeKey`` and Graph ``changeKey``
  carry the same value.

Change tracking
---------------
Each mailbox has a sequence counter; every mutation takes the next number. Items remember the
sequence of their creation and of their last change; deleted items leave a tombstone. A sync
state (EWS ``SyncState`` or Graph delta token) is a signed, opaque pair ``(known, cursor)``:
everything up to ``known`` the client has fully seen, ``cursor`` is how far paging of the
current round got. An item created and deleted between two syncs yields nothing, an item
created then updated yields one create. Each folder also keeps a human-readable ``change_log``.

All access goes through ``Tenant.lock`` (an RLock), so the server's threads and a test that
mutates the tenant between client runs never see half-made changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from ucware_contactsync.contact import NUMBER_TYPES

from .objects import (
    CLOCK_START,
    CONTACT_FIELDS,
    GRAPH_VISIBLE,
    ISSUED_SECRETS,
    MAPI_TAGS,
    VISIBLE_MAPI_TAGS,
    App,
    Change,
    Folder,
    Item,
    Member,
    Tombstone,
    ews_to_graph_id,
    graph_to_ews_id,
)

# The objects are defined in objects.py; tenant.X stays their public spelling.
__all__ = [
    "CLOCK_START", "CONTACT_FIELDS", "GRAPH_VISIBLE", "ISSUED_SECRETS", "MAPI_TAGS",
    "VISIBLE_MAPI_TAGS", "App", "Change", "Folder", "Item", "Member", "Tombstone",
    "ews_to_graph_id", "graph_to_ews_id", "Mailbox", "Tenant",
]


class Mailbox:
    def __init__(self, tenant: Tenant, smtp: str, display_name: str, rest_enabled: bool,
                 impersonation_denied: bool) -> None:
        self.tenant = tenant
        self.smtp = smtp  # as given; lookups are case-insensitive
        self.display_name = display_name
        self.rest_enabled = rest_enabled  # False -> Graph MailboxNotEnabledForRESTAPI
        self.impersonation_denied = impersonation_denied  # True -> ErrorImpersonateUserDenied
        self.seq = 0
        self.epoch = 0  # bumped by invalidate_sync_states(): all issued states turn invalid
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}  # all live items by EWS id
        # EWS id -> a contact as verbatim Graph JSON (add_graph_contact); Graph serves it as is.
        self.graph_docs: dict[str, dict[str, Any]] = {}
        self.root = self._new_folder("", None, "root")
        self.msgfolderroot = self._new_folder("Top of Information Store", self.root,
                                              "msgfolderroot")
        self.contacts = self._new_folder("Contacts", self.msgfolderroot, "contacts")

    def __repr__(self) -> str:
        return f"<Mailbox {self.smtp}>"

    @property
    def key(self) -> str:
        return self.smtp.lower()

    # -- internal helpers ----------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _new_folder(self, name: str, parent: Folder | None, kind: Any) -> Folder:
        seq = self._next_seq()
        f = Folder(self, self.tenant.new_entry_id(b"\x00\x01\x2e\x00", 46),
                   self.tenant.new_change_key(b"\x01\x00\x00\x00"), name, parent, kind, seq, seq)
        self.folders[f.ews_id] = f
        return f

    def _resolve_folder(self, folder: Folder | str | None) -> Folder:
        if folder is None:
            return self.contacts
        if isinstance(folder, Folder):
            if folder.mailbox is not self:
                raise ValueError(f"{folder!r} belongs to another mailbox")
            return folder
        found = self.folders.get(graph_to_ews_id(folder))
        if found is None:
            raise KeyError(f"no folder {folder!r} in {self.smtp}")
        return found

    # -- lookups ---------------------------------------------------------------------------------
    def item(self, item_id: str) -> Item | None:
        """The live item with this EWS or Graph id."""
        with self.tenant.lock:
            return self.items.get(graph_to_ews_id(item_id))

    def folder(self, folder_id: str) -> Folder | None:
        with self.tenant.lock:
            f = self.folders.get(graph_to_ews_id(folder_id))
            return f if f is not None and f.deleted_seq is None else None

    def folder_by_name(self, *path: str) -> Folder:
        """``folder_by_name("Kunden", "Nord")`` under Contacts."""
        f = self.contacts
        for name in path:
            f = next(c for c in f.children() if c.name == name)
        return f

    def contact_folders(self) -> list[Folder]:
        """Contacts and all its subfolders."""
        with self.tenant.lock:
            return [self.contacts, *self.contacts.descendants()]

    def all_items(self) -> list[Item]:
        with self.tenant.lock:
            return list(self.items.values())

    # -- mutations ---------------------------------------------------------------------------------
    def add_folder(self, name: str, parent: Folder | str | None = None) -> Folder:
        """A contact folder below Contacts (or below ``parent``, nesting allowed)."""
        with self.tenant.lock:
            return self._new_folder(name, self._resolve_folder(parent), "folder")

    def rename_folder(self, folder: Folder | str, name: str) -> Folder:
        with self.tenant.lock:
            f = self._resolve_folder(folder)
            f.name = name
            f.last_seq = self._next_seq()
            f.change_key = self.tenant.new_change_key(b"\x01\x00\x00\x00")
            return f

    def delete_folder(self, folder: Folder | str) -> None:
        """Delete a subfolder with everything in it (hierarchy sync reports it deleted)."""
        with self.tenant.lock:
            f = self._resolve_folder(folder)
            if f.kind != "folder":
                raise ValueError("only user-made contact folders can be deleted")
            for sub in [f, *f.descendants()]:
                for item_id in list(sub.items):
                    self.delete_contact(item_id)
                sub.deleted_seq = self._next_seq()

    def add_contact(self, given_name: str = "", surname: str = "", display_name: str = "",
                    company: str = "", department: str = "", job_title: str = "",
                    emails: Sequence[str] = (), numbers: dict[str, str] | None = None,
                    categories: Sequence[str] = (), folder: Folder | str | None = None,
                    notes: str = "", extra_numbers: Sequence[tuple[str, str]] = ()) -> Item:
        with self.tenant.lock:
            target = self._resolve_folder(folder)
            seq = self._next_seq()
            item = Item(self, "contact", self.tenant.new_entry_id(b"\x00\x03\x24\x00", 66),
                        self.tenant.new_change_key(), target, seq, seq)
            _apply_fields(item, dict(given_name=given_name, surname=surname,
                                     display_name=display_name, company=company,
                                     department=department, job_title=job_title,
                                     emails=emails, numbers=numbers or {},
                                     categories=categories, notes=notes,
                                     extra_numbers=extra_numbers))
            self._store(item, seq)
            return item

    def add_graph_contact(self, doc: dict[str, Any], folder: Folder | str | None = None) -> Item:
        """A contact given as Graph JSON (e.g. an example from Microsoft's documentation) that
        the Graph side serves as written: every key and value of ``doc``, ``$select`` picking
        keys from it. ``id`` and ``changeKey`` are the document's when it has them (the EWS id
        is the same bytes in standard base64), else generated ones, and Graph adds the ``id``
        it always returns; ``@odata.context`` (an annotation of a response, not of the
        contact) is dropped. EWS sees only the display name; change it by deleting the item
        and adding a new document.
        """
        given = doc.get("id")
        if given is not None and (not isinstance(given, str) or not given
                                  or "+" in given or "/" in given):
            raise ValueError(f"not a Graph id: {given!r}")
        with self.tenant.lock:
            target = self._resolve_folder(folder)
            ews_id = (graph_to_ews_id(given) if given
                      else self.tenant.new_entry_id(b"\x00\x03\x24\x00", 66))
            if ews_id in self.items:
                raise ValueError(f"item {given!r} exists in {self.smtp}")
            key = doc.get("changeKey")
            seq = self._next_seq()
            name = doc.get("displayName")
            item = Item(self, "contact", ews_id,
                        key if isinstance(key, str) and key else self.tenant.new_change_key(),
                        target, seq, seq, display_name=name if isinstance(name, str) else "")
            self.graph_docs[ews_id] = {k: v for k, v in doc.items() if k != "@odata.context"}
            self._store(item, seq)
            return item

    def add_distribution_list(self, name: str, members: Iterable[str | Member | tuple[str, str]]
                              = (), folder: Folder | str | None = None,
                              categories: Sequence[str] = ()) -> Item:
        """A personal distribution list; members are addresses, (name, address) or Member."""
        with self.tenant.lock:
            target = self._resolve_folder(folder)
            seq = self._next_seq()
            item = Item(self, "distribution_list",
                        self.tenant.new_entry_id(b"\x00\x03\x24\x00", 66),
                        self.tenant.new_change_key(), target, seq, seq, display_name=name,
                        categories=list(categories))
            for m in members:
                if isinstance(m, Member):
                    item.members.append(m)
                elif isinstance(m, tuple):
                    item.members.append(Member(m[0], m[1]))
                else:
                    item.members.append(Member(m, m))
            self._store(item, seq)
            return item

    def _store(self, item: Item, seq: int) -> None:
        item.folder.items[item.ews_id] = item
        item.folder.change_log.append(Change(seq, "create", item.ews_id))
        self.items[item.ews_id] = item

    def update_contact(self, item_id: str, **fields: Any) -> Item:
        """Change fields (names as in add_contact; ``name``/``members`` for lists)."""
        with self.tenant.lock:
            item = self.item(item_id)
            if item is None:
                raise KeyError(f"no item {item_id!r} in {self.smtp}")
            if item.ews_id in self.graph_docs:
                raise ValueError("a contact added as Graph JSON is served as written; delete it "
                                 "and add the changed document instead")
            unknown = set(fields) - set(CONTACT_FIELDS) - {"name", "members"}
            if unknown:
                raise TypeError(f"unknown contact fields: {sorted(unknown)}")
            if "name" in fields:
                fields["display_name"] = fields.pop("name")
            if "members" in fields:
                item.members = [m if isinstance(m, Member) else
                                Member(*m) if isinstance(m, tuple) else Member(m, m)
                                for m in fields.pop("members")]
            _apply_fields(item, fields)
            item.last_seq = self._next_seq()
            item.change_key = self.tenant.new_change_key()
            item.cache.clear()
            item.folder.change_log.append(Change(item.last_seq, "update", item.ews_id))
            return item

    def delete_contact(self, item_id: str) -> None:
        with self.tenant.lock:
            item = self.item(item_id)
            if item is None:
                raise KeyError(f"no item {item_id!r} in {self.smtp}")
            seq = self._next_seq()
            del self.items[item.ews_id]
            del item.folder.items[item.ews_id]
            self.graph_docs.pop(item.ews_id, None)
            item.folder.tombstones.append(Tombstone(item.ews_id, item.kind, item.created_seq, seq))
            item.folder.change_log.append(Change(seq, "delete", item.ews_id))

    delete_distribution_list = delete_contact

    def invalidate_sync_states(self) -> None:
        with self.tenant.lock:
            self.epoch += 1

    # -- change tracking (shared by EWS SyncFolderItems and Graph delta) --------------------------
    def changes(self, folder: Folder, known: int, cursor: int, limit: int,
                kinds: frozenset[str] = frozenset({"contact", "distribution_list"}),
                ) -> tuple[list[tuple[str, Item | Tombstone]], int, int, bool]:
        """Up to ``limit`` changes after ``cursor`` -> (changes, new_known, new_cursor, last).

        Each change is ("create"|"update", Item) or ("delete", Tombstone); an item shows up with
        its latest state only, so a create followed by updates is one create.
        """
        with self.tenant.lock:
            pending: list[tuple[int, str, Item | Tombstone]] = []
            for it in folder.items.values():
                if it.last_seq > cursor and it.kind in kinds:
                    pending.append((it.last_seq, "create" if it.created_seq > known else "update",
                                    it))
            for ts in folder.tombstones:
                if ts.deleted_seq > cursor and ts.created_seq <= known and ts.kind in kinds:
                    pending.append((ts.deleted_seq, "delete", ts))
            pending.sort(key=lambda p: p[0])
            page = pending[:limit]
            if len(pending) <= limit:
                # Round complete: the client now knows everything up to now.
                return [(k, o) for _, k, o in page], self.seq, self.seq, True
            new_cursor = page[-1][0]
            return [(k, o) for _, k, o in page], known, new_cursor, False

    def hierarchy_changes(self, base: Folder, known: int
                          ) -> tuple[list[tuple[str, Folder]], int]:
        """Folder changes below ``base`` since ``known`` (for SyncFolderHierarchy)."""
        with self.tenant.lock:
            out: list[tuple[str, Folder]] = []
            below = {f.ews_id for f in _all_below(base)}
            for f in self.folders.values():
                if f.ews_id not in below:
                    continue
                if f.deleted_seq is not None:
                    if f.created_seq <= known < f.deleted_seq:
                        out.append(("delete", f))
                elif f.created_seq > known:
                    out.append(("create", f))
                elif f.last_seq > known:
                    out.append(("update", f))
            return out, self.seq


def _all_below(base: Folder) -> list[Folder]:
    out = []
    for f in base.mailbox.folders.values():
        p = f.parent
        while p is not None:
            if p is base:
                out.append(f)
                break
            p = p.parent
    return out


def _apply_fields(item: Item, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name not in CONTACT_FIELDS:
            raise TypeError(f"unknown contact field {name!r}")
        if name == "numbers":
            numbers = {k: v for k, v in dict(value or {}).items() if v}
            bad = set(numbers) - set(NUMBER_TYPES)
            if bad:
                raise ValueError(f"unknown number types {sorted(bad)}; use {NUMBER_TYPES}")
            # Keep EWS label order so renders are stable.
            item.numbers = {t: numbers[t] for t in NUMBER_TYPES if t in numbers}
        elif name == "emails":
            emails = [e for e in (value or []) if e]
            if len(emails) > 3:
                raise ValueError("Exchange keeps at most 3 e-mail addresses per contact")
            item.emails = emails
        elif name == "categories":
            item.categories = list(value or [])
        elif name == "extra_numbers":
            pairs = [(str(t), str(n)) for t, n in value or ()]
            bad = {t for t, _ in pairs} - set(NUMBER_TYPES)
            if bad:
                raise ValueError(f"unknown number types {sorted(bad)}; use {NUMBER_TYPES}")
            item.extra_numbers = pairs
        else:
            setattr(item, name, value or "")
    if item.kind == "contact" and not item.display_name:
        # Outlook fills in "Given Surname" (or the company) when no display name is typed.
        item.display_name = (" ".join(p for p in (item.given_name, item.surname) if p)
                             or item.company or (item.emails[0] if item.emails else ""))


class Tenant:
    """A Microsoft 365 tenant: Entra apps and Exchange mailboxes."""

    def __init__(self, tenant_id: str | None = None, domain: str = "contoso.de",
                 seed: int | None = None) -> None:
        # One RNG for ids/keys: a seeded tenant always gets the same ids in the same order.
        self.rng = random.Random(seed if seed is not None else random.SystemRandom().random())
        self.tenant_id = tenant_id or str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.domain = domain
        self.lock = threading.RLock()
        self.apps: dict[str, App] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        # Signs tokens and sync states; per tenant so they survive a server restart.
        self.signing_key = self.rng.randbytes(32)
        self.public_folders: Mailbox | None = None  # made by testing/public_folders.py
        from .graph_directory import Directory  # late: graph_directory imports this module

        self.directory = Directory(self)  # Entra users, mail contacts and groups

    def __repr__(self) -> str:
        return f"<Tenant {self.tenant_id} {self.domain} mailboxes={len(self.mailboxes)}>"

    # -- ids ------------------------------------------------------------------------------------
    def new_entry_id(self, prefix: bytes, random_len: int) -> str:
        with self.lock:
            return base64.b64encode(prefix + self.rng.randbytes(random_len)).decode("ascii")

    def new_change_key(self, prefix: bytes = b"\x11\x00\x00\x00\x16\x00\x00\x00") -> str:
        with self.lock:
            return base64.b64encode(prefix + self.rng.randbytes(14)).decode("ascii")

    # -- directory ------------------------------------------------------------------------------
    def add_app(self, client_id: str | None = None, secret: str | None = None,
                roles: Sequence[str] = ("full_access_as_app",), secret_expired: bool = False,
                display_name: str = "UCware Contactsync") -> App:
        with self.lock:
            cid = client_id or str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            sec = secret or base64.b64encode(self.rng.randbytes(30)).decode()[:40]
            app = App(cid, sec, tuple(roles), secret_expired, display_name,
                      str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
            self.apps[cid.lower()] = app
            return app

    def app(self, client_id: str) -> App:
        return self.apps[client_id.lower()]

    def add_mailbox(self, smtp: str, display_name: str | None = None, rest_enabled: bool = True,
                    impersonation_denied: bool = False) -> Mailbox:
        with self.lock:
            if smtp.lower() in self.mailboxes:
                raise ValueError(f"mailbox {smtp} exists")
            name = display_name or smtp.split("@")[0].replace(".", " ").title()
            mbx = Mailbox(self, smtp, name, rest_enabled, impersonation_denied)
            self.mailboxes[smtp.lower()] = mbx
            return mbx

    def mailbox(self, smtp: str) -> Mailbox:
        """Case-insensitive lookup; KeyError if there is no such mailbox."""
        with self.lock:
            return self.mailboxes[smtp.lower()]

    def find_mailbox(self, smtp: str | None) -> Mailbox | None:
        with self.lock:
            return self.mailboxes.get((smtp or "").lower())

    def invalidate_sync_states(self, smtp: str) -> None:
        self.mailbox(smtp).invalidate_sync_states()

    # -- opaque, signed state tokens --------------------------------------------------------------
    def seal(self, payload: dict[str, Any], urlsafe: bool = False) -> str:
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        sig = hmac.new(self.signing_key, raw, hashlib.sha256).digest()[:16]
        enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
        return enc(sig + raw).decode("ascii")

    def unseal(self, token: str, urlsafe: bool = False) -> dict[str, Any] | None:
        """The payload of a token we issued, or None if garbled or forged."""
        try:
            dec = base64.urlsafe_b64decode if urlsafe else base64.b64decode
            blob = dec(token.strip() + "=" * (-len(token.strip()) % 4))
            sig, raw = blob[:16], blob[16:]
            good = hmac.new(self.signing_key, raw, hashlib.sha256).digest()[:16]
            if not hmac.compare_digest(sig, good):
                return None
            data = json.loads(raw)
            return data if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None
