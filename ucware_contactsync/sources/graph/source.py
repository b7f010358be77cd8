"""Microsoft Graph v1.0: app-only contact reads of Exchange Online mailboxes (``Contacts.Read``).

What one read asks (``{m}`` = ``{graph_url}/v1.0/users/{mailbox}``); every request goes
through the dispatcher (batch.py), which packs the requests of one or many mailboxes into
``$batch`` requests:

* folders: the default folder is addressed as ``{m}/contacts`` (no lookup of its id); with
  ``include_subfolders`` the folders below it come from ``{m}/contactFolders/delta`` and its
  stored deltaLink (folders.py);
* full read, per folder: first a delta round (``{m}/contacts/delta`` or
  ``{m}/contactFolders/{id}/contacts/delta``, ``$select=id``, ``Prefer: odata.maxpagesize=200``)
  up to its ``@odata.deltaLink``, then the listing (``$select`` of the stored fields,
  ``$expand=singleValueExtendedProperties(…)`` for the hidden number types, ``$top=1000``).
  Delta before listing on purpose: a change in between shows up in the listing *and* again in
  the next incremental read (harmless), never in neither;
* incremental read: the stored deltaLink of the folder hierarchy and of each folder, side by
  side, followed to the new deltaLinks; ``@removed`` entries are deletions, every other entry
  is fetched with ``GET {m}/contacts/{id}?$select=…&$expand=…`` ($expand is not documented on
  delta). A folder with 50 or more changes (an import, a bulk edit) is listed once instead.
  An item reported removed in one folder and changed in another was moved: it stays. A
  changed item whose GET answers 404 stays too, and its folder keeps the old delta link (the
  next run sees an ``@removed`` or the item). A new folder is read whole; a vanished folder,
  a 410 on a contact delta link (or a stored state that is no delta link of graph_url) raise
  ``Kind.STATE_INVALID``.

``prefetch`` sends the first requests of the coming incremental reads ahead, so the nightly
deltas of many mailboxes travel together (about ten unchanged mailboxes per round trip).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from ...settings import Settings
from ..auth import TokenProvider, token_provider
from ..base import ContactSource, Kind, MailboxRead, SourceError, canonical_id
from .batch import Dispatcher, new_session
from .client import HINT_BUG, MailboxCall, Req, origin, prepared
from .folders import HIERARCHY, Tree, tree_task
from .mapping import EXPAND, SELECT, is_contact, to_contact
from .tasks import Raw, Task, parallel

log = logging.getLogger("ucware_contactsync.sources.graph")

CONTACTS = "contacts"  # key of the default contacts folder (Graph: {m}/contacts)
BULK_CHANGES = 50  # from this many changes in one folder, list it rather than GET each item
CHECK_MAX_WAIT = 60.0

class GraphSource(ContactSource):
    """Reads contacts through Microsoft Graph; one instance serves parallel reads."""

    api = "graph"
    # Knobs, class attributes so tests can shrink them on an instance.
    page_size = 1000  # $top of plain listings (Graph's maximum)
    transient_attempts = 4  # tries for dropped connections / 5xx without Retry-After
    backoff = 0.5  # first back-off step (s) for transient errors; doubles, at most 8 s
    prefetch_window = 400  # mailboxes the engine announces ahead of their reads

    def __init__(self, settings: Settings, tokens: TokenProvider | None = None,
                 include_subfolders: bool = True, max_wait: float = 300.0) -> None:
        self.settings = settings
        self.graph_url = settings.graph_url.rstrip("/")
        self.tokens = tokens or token_provider(settings, settings.graph_url)
        self.include_subfolders = include_subfolders
        self.max_wait = max_wait
        self._origin = origin(self.graph_url)
        self._lock = threading.Lock()
        self._sessions: set[requests.Session] = set()
        self._prefetched: dict[str, tuple[dict[str, str], _Call]] = {}
        self._dispatcher = Dispatcher(self, settings.max_workers)

    def __repr__(self) -> str:
        return f"GraphSource({self.graph_url!r}, subfolders={self.include_subfolders})"

    # -- public API -----------------------------------------------------------------------------

    def read(self, mailbox: str, states: Mapping[str, str] | None) -> MailboxRead:
        with self._lock:
            ahead = self._prefetched.pop(mailbox.lower(), None)
        call = (ahead[1] if ahead and states and ahead[0] == dict(states)
                else _Call(self, mailbox, self.max_wait))
        task = self._incremental(call, states) if states else self._full(call)
        result: MailboxRead = self._drive(call, task)
        result.requests = call.requests
        log.debug("graph %s: %s read, %d contacts, %d deleted, %d requests, %.1f s waited",
                  mailbox, "full" if result.full else "incremental", len(result.contacts),
                  len(result.deleted), call.requests, call.waited)
        return result

    def prefetch(self, jobs: Sequence[tuple[str, Mapping[str, str] | None]]) -> None:
        """Send the first requests of these incremental reads now, batched with each other."""
        reqs: list[Req] = []
        for mailbox, states in jobs:
            if not states or not self._usable(states):
                continue
            call = _Call(self, mailbox, self.max_wait)
            first = [Req(call, link, delta=True, state_link=True)
                     for fid, link in states.items() if fid != HIERARCHY]
            tree = Tree.loads(states.get(HIERARCHY, "")) if self.include_subfolders else None
            if tree is not None:
                first.insert(0, Req(call, tree.link, state_link=True))
            call.prefetched = {r.url: r for r in first}
            with self._lock:
                self._prefetched[mailbox.lower()] = (dict(states), call)
            reqs.extend(first)
        if reqs:
            self._dispatcher.submit(reqs, urgent=False)

    def check(self, mailbox: str) -> None:
        """One GET of the default contacts folder: proves token, permission and mailbox."""
        with _Call(self, mailbox, min(self.max_wait, CHECK_MAX_WAIT)) as call:
            call.get(f"{call.base}/contactFolders/contacts", {"$select": "id"})

    def close(self) -> None:
        with self._lock:
            dispatcher, self._dispatcher = self._dispatcher, Dispatcher(
                self, self.settings.max_workers)
            sessions, self._sessions = list(self._sessions), set()
            self._prefetched.clear()
        dispatcher.close()
        for s in sessions:
            s.close()

    # -- sessions and tokens (used by the dispatcher) ------------------------------------------

    def _open_session(self) -> requests.Session:
        s = new_session(self.graph_url)
        with self._lock:
            self._sessions.add(s)
        return s

    def _close_session(self, s: requests.Session) -> None:
        with self._lock:
            self._sessions.discard(s)
        s.close()

    def _renew(self, used: str) -> None:
        """Drop the provider's token if it is still the one that was refused.

        Parallel requests hit by the same expiry then fetch one new token, not one each.
        """
        if self.tokens.access_token() == used:
            self.tokens.invalidate()

    def _usable(self, states: Mapping[str, str]) -> bool:
        return all(origin(str(v)) == self._origin for k, v in states.items() if k != HIERARCHY)

    # -- driving a read: generator tasks yield requests, get answers -----------------------------

    def _drive(self, call: MailboxCall, task: Task) -> Any:
        """Run ``task``: each yielded Req (or list of them) goes out, its answer goes back in."""
        try:
            asked = task.send(None)
            while True:
                many = isinstance(asked, list)
                reqs = asked if many else [asked]
                answers = self._answers(call, reqs)
                if isinstance(asked, Raw):
                    asked = task.send(answers)
                    continue
                failed = next((a for a in answers if isinstance(a, SourceError)), None)
                if failed is not None:
                    asked = task.throw(failed)
                else:
                    asked = task.send(answers if many else answers[0])
        except StopIteration as done:
            return done.value

    def _answers(self, call: MailboxCall, reqs: list[Req]) -> list[Any]:
        use: list[Req] = []
        send: list[Req] = []
        ahead: list[Req] = []
        for r in reqs:
            pre = call.prefetched.pop(r.url, None)
            if pre is not None and pre.state_link == r.state_link and pre.delta == r.delta:
                use.append(pre)
                ahead.append(pre)
            else:
                use.append(r)
                send.append(r)
        if ahead:
            self._dispatcher.hurry(ahead)
        if send:
            self._dispatcher.submit(send)
        out: list[Any] = []
        for r in use:
            try:
                out.append(r.future.result())
            except SourceError as exc:
                out.append(exc)
        return out

    @staticmethod
    def _one(req: Req) -> Task:
        return (yield req)

    def _folders(self, call: _Call) -> list[str] | None:
        """The folders to read, or None: the default one and (include_subfolders) all below
        it, kept by the folder delta. A subclass may name its own (a shared mailbox's
        folder); those are looked up on every read and compared with the stored states."""
        return None

    # -- full read ------------------------------------------------------------------------------

    def _full(self, call: _Call) -> Task:
        result = MailboxRead(api=self.api, full=True)
        fixed = self._folders(call)
        if fixed is not None:
            done = yield from parallel([self._folder_full(call, f) for f in fixed])
            reads = list(zip(fixed, done, strict=True))
        elif self.include_subfolders:
            # Round 1: the folders and the default folder's delta; then its listing side by
            # side with the subfolders' deltas and listings.
            tree, link = yield from parallel([tree_task(call, None),
                                              self._delta_round(call, CONTACTS)])
            subs = tree.below_root()
            done = yield from parallel([self._contacts(call, CONTACTS, link),
                                        *(self._folder_full(call, f) for f in subs)])
            reads = list(zip([CONTACTS, *subs], done, strict=True))
        else:
            reads = [(CONTACTS, (yield from self._folder_full(call, CONTACTS)))]
        for fid, (link, contacts, skipped) in reads:
            result.states[canonical_id(fid)] = link
            result.contacts.extend(contacts)
            result.skipped += skipped
        if fixed is None and self.include_subfolders:
            result.states[HIERARCHY] = tree.dumps()
        return result

    def _folder_full(self, call: MailboxCall, fid: str) -> Task:
        """Delta round (ids only), then the listing -> (link, contacts, skipped)."""
        link = yield from self._delta_round(call, fid)
        return (yield from self._contacts(call, fid, link))

    def _delta_round(self, call: MailboxCall, fid: str) -> Task:
        """A first delta round over the folder (ids only) -> its deltaLink."""
        page = yield Req(call, prepared(f"{_items(call, fid)}/delta", {"$select": "id"}),
                         delta=True)
        while not page.get("@odata.deltaLink"):
            nxt = page.get("@odata.nextLink")
            if not nxt:
                raise SourceError(Kind.TRANSIENT, f"Graph ended the delta round of "
                                  f"{call.mailbox} without a deltaLink", HINT_BUG)
            page = yield Req(call, call.checked(str(nxt)), delta=True)
        return str(page["@odata.deltaLink"])

    def _contacts(self, call: MailboxCall, fid: str, link: str) -> Task:
        """The folder's listing as contacts -> (link, contacts, skipped)."""
        contacts, skipped = [], 0
        folder = canonical_id(fid)
        for data in (yield from self._listing(call, fid)):
            if is_contact(data):
                contacts.append(to_contact(data, folder))
            else:
                skipped += 1
        return link, contacts, skipped

    def _listing(self, call: MailboxCall, fid: str) -> Task:
        """Every item of one folder with all fields we store."""
        items: list[dict[str, Any]] = []
        url: str | None = prepared(_items(call, fid), {"$select": SELECT, "$expand": EXPAND,
                                                       "$top": str(self.page_size)})
        while url:
            page = yield Req(call, url)
            items.extend(page.get("value", []))
            nxt = page.get("@odata.nextLink")
            url = call.checked(str(nxt)) if nxt else None
        return items

    # -- incremental read -----------------------------------------------------------------------

    def _incremental(self, call: _Call, states: Mapping[str, str]) -> Task:
        links = {k: str(v) for k, v in states.items() if k != HIERARCHY}
        if not self._usable(states):
            # e.g. an EWS SyncState after switching api, or graph_url changed.
            raise SourceError(Kind.STATE_INVALID, f"the stored state of {call.mailbox} is "
                              f"not a delta link of {self.graph_url}")
        fixed = self._folders(call)
        by_tree = fixed is None and self.include_subfolders
        tasks = [self._folder_changes(call, link) for link in links.values()]
        if by_tree:
            tasks.insert(0, tree_task(call, states.get(HIERARCHY)))
        done = yield from parallel(tasks)
        tree: Tree | None = done.pop(0) if by_tree else None
        current = fixed if fixed is not None else [
            CONTACTS, *(tree.below_root() if tree else [])]
        gone = set(links) - set(current)
        new = [f for f in current if f not in links]
        if new and fixed is not None:
            raise SourceError(Kind.STATE_INVALID, f"{len(new)} new contacts folder(s) in "
                              f"{call.mailbox} have no sync state yet")
        if gone:
            # Only a full read can remove the entries of a vanished folder.
            raise SourceError(Kind.STATE_INVALID, f"{len(gone)} contacts folder(s) of "
                              f"{call.mailbox} were removed since the last run")
        result = MailboxRead(api=self.api, full=False)
        if tree is not None:
            result.states[HIERARCHY] = tree.dumps()
        changed: dict[str, str] = {}  # Graph id -> folder id (a moved item: its new folder)
        removed: list[str] = []
        for fid, (link, ch, rm, skipped) in zip(links, done, strict=True):
            result.states[fid] = link
            changed.update(dict.fromkeys(ch, fid))
            removed.extend(rm)
            result.skipped += skipped
        kept: set[str] = set()
        if new:  # a folder made since the last run: read it whole
            reads = yield from parallel([self._folder_full(call, f) for f in new])
            for fid, (link, contacts, skipped) in zip(new, reads, strict=True):
                result.states[fid] = link
                result.contacts.extend(contacts)
                result.skipped += skipped
                kept.update(c.source_id for c in contacts if c.source_id)
        fetched = yield from self._changed_items(call, changed)
        for (gid, fid), data in zip(changed.items(), fetched, strict=True):
            kept.add(canonical_id(gid))
            if data is None:
                # 404 for an item the delta just reported changed: deleted since, or not
                # readable this moment. Neither delete its entry nor move past the change:
                # this folder keeps its old delta link, and the next run reads the truth
                # (an @removed, or the item) from there.
                result.states[fid] = links[fid]
                log.info("graph %s: a changed contact answered 404; its folder is read "
                         "again from the same delta link next run", call.mailbox)
                continue
            if is_contact(data):
                result.contacts.append(to_contact(data, fid))
            else:
                result.skipped += 1
        # A move shows as removed in one folder and added in another: keep it, don't delete.
        seen: set[str] = set()
        for gid in removed:
            cid = canonical_id(gid)
            if cid not in kept and cid not in seen:
                seen.add(cid)
                result.deleted.append(cid)
        return result

    def _folder_changes(self, call: MailboxCall, link: str) -> Task:
        """Follow one stored delta link -> (new link, changed ids, removed ids, skipped)."""
        changed: list[str] = []
        removed: list[str] = []
        skipped = 0
        new_link = ""
        page = yield Req(call, link, delta=True, state_link=True)
        while True:
            for data in page.get("value", []):
                gid = str(data.get("id", ""))
                if not gid:
                    continue
                if "@removed" in data:
                    removed.append(gid)
                elif is_contact(data):
                    changed.append(gid)
                else:
                    skipped += 1
            new_link = str(page.get("@odata.deltaLink") or new_link)
            nxt = page.get("@odata.nextLink")
            if not nxt:
                break
            page = yield Req(call, call.checked(str(nxt)), delta=True)
        if not new_link:
            raise SourceError(Kind.TRANSIENT, f"Graph ended the delta round of "
                              f"{call.mailbox} without a deltaLink", HINT_BUG)
        return new_link, changed, removed, skipped

    def _changed_items(self, call: MailboxCall, changed: dict[str, str]) -> Task:
        """The changed items in ``changed`` order (None: gone since the delta page).

        One GET per item (batched, at most four of a mailbox at a time); but a folder with
        BULK_CHANGES or more changes is listed instead, one request per 1000 items.
        """
        per_folder: dict[str, int] = {}
        for fid in changed.values():
            per_folder[fid] = per_folder.get(fid, 0) + 1
        found: dict[str, dict[str, Any] | None] = {}
        bulk = [fid for fid, count in per_folder.items() if count >= BULK_CHANGES]
        listed = yield from parallel([self._listing(call, fid) for fid in bulk])
        for fid, items in zip(bulk, listed, strict=True):
            for data in items:
                gid = str(data.get("id", ""))
                if changed.get(gid) == fid:
                    found[gid] = data
        # Not in its folder's listing (moved or deleted meanwhile, or no listing): fetch it.
        rest = [gid for gid in changed if gid not in found]
        if rest:
            got = yield [Req(call, prepared(f"{call.base}/contacts/{_seg(gid)}",
                                            {"$select": SELECT, "$expand": EXPAND}),
                             missing_ok=True) for gid in rest]
            found.update(zip(rest, got, strict=True))
        return [found.get(gid) for gid in changed]


class _Call(MailboxCall):
    """One read with blocking helpers, for sources built on GraphSource (the directory, a
    shared mailbox's folder): ``get``, ``find`` and ``pages`` go through the dispatcher too."""

    def __init__(self, source: GraphSource, mailbox: str, max_wait: float) -> None:
        super().__init__(source.graph_url, mailbox, max_wait)
        self.source = source

    def __enter__(self) -> _Call:
        return self

    def __exit__(self, *exc: object) -> None:
        self.prefetched.clear()

    def get(self, url: str, params: dict[str, str] | None = None, *, delta: bool = False,
            state_link: bool = False) -> dict[str, Any]:
        got = self._one(Req(self, prepared(url, params), delta=delta, state_link=state_link))
        if got is None:  # cannot happen without missing_ok; keeps type checkers honest
            raise SourceError(Kind.TRANSIENT, f"Graph answered {url} with nothing", HINT_BUG)
        return dict(got)

    def find(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """Like get, but a 404 gives None."""
        got = self._one(Req(self, prepared(url, params), missing_ok=True))
        return None if got is None else dict(got)

    def pages(self, url: str, params: dict[str, str] | None, delta: bool = False,
              state_link: bool = False) -> Iterator[dict[str, Any]]:
        """Pages of a collection: the first from ``url`` + ``params``, then each nextLink."""
        page = self.get(url, params, delta=delta, state_link=state_link)
        while True:
            yield page
            nxt = page.get("@odata.nextLink")
            if not nxt:
                return
            page = self.get(self.checked(str(nxt)), None, delta=delta)

    def _one(self, req: Req) -> Any:
        return self.source._drive(self, GraphSource._one(req))


def _items(call: MailboxCall, fid: str) -> str:
    """The contacts collection of a folder."""
    if fid == CONTACTS:
        return f"{call.base}/contacts"
    return f"{call.base}/contactFolders/{_seg(fid)}/contacts"


def _seg(item_id: str) -> str:
    """An id as one path segment (Graph ids are base64url with '=' padding)."""
    return quote(item_id, safe="=")
