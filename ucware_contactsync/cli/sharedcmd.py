"""shared add|list|remove: phonebooks filled from a shared mailbox or a public folder."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from .. import logs
from ..db import Database
from ..errors import EXIT_OK, UsageError
from ..model import EMAIL_LEN, NAME_LEN, Entry, Phonebook
from ..ownership import Origin
from ..sync.lock import RunLock
from ..sync.shared import find_shared
from .common import load_settings, open_db

if TYPE_CHECKING:
    from ..settings import Settings
    from ..sources import Choice

log = logs.get("cli")
KINDS = ("shared-mailbox", "public-folder")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("shared", parents=[common],
                       help="shared phonebooks from shared mailboxes or public folders")
    ssub = p.add_subparsers(dest="shared_command", metavar="ACTION", required=True)
    a = ssub.add_parser("add", parents=[common], help="fill a shared phonebook from a shared "
                        "mailbox or (on-premises) a public folder")
    a.add_argument("mailbox", nargs="?", metavar="MAILBOX",
                   help="the shared mailbox's address; with --public-folder: the mailbox whose "
                   "user may read the folder (default: the first user the sync selects)")
    a.add_argument("--phonebook", metavar="TITLE", required=True)
    a.add_argument("--folder", metavar="NAME",
                   help="only this contact folder (below Contacts) and its subfolders")
    a.add_argument("--public-folder", metavar="PATH",
                   help="a public folder, e.g. 'Firma/Kontakte' (on-premises Exchange only)")
    a.set_defaults(func=shared_add)
    a = ssub.add_parser("list", parents=[common], help="the shared phonebooks")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=shared_list)
    a = ssub.add_parser("remove", parents=[common], help="stop filling and delete a shared "
                        "phonebook")
    a.add_argument("mailbox", metavar="MAILBOX", help="the shared mailbox, or the public "
                   "folder's path")
    a.add_argument("--phonebook", metavar="TITLE",
                   help="which one, if the mailbox fills several")
    a.set_defaults(func=shared_remove)


def _check_len(what: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise UsageError(f"{what} must not be empty")
    if len(value) > limit:
        raise UsageError(f"{what} is longer than {limit} characters")
    return value


def shared_add(args: argparse.Namespace) -> int:
    title = _check_len("--phonebook", args.phonebook, NAME_LEN)
    if not args.mailbox and not args.public_folder:
        raise UsageError("give MAILBOX or --public-folder PATH",
                         "e.g. 'shared add kontakte@contoso.de --phonebook Kontakte'")
    if args.public_folder and args.folder:
        raise UsageError("--folder belongs to a shared mailbox; give the public folder's "
                         "whole path with --public-folder")
    database = open_db(args)
    conf = load_settings(database)
    mailbox: str | None
    folder: str | None
    if args.public_folder:
        if conf.office365:
            raise UsageError(
                "public folders can only be read from on-premises Exchange: Microsoft "
                "restricts programmatic access to public folders in Exchange Online and EWS "
                "there ends on 2027-04-01",
                "move the contacts to a shared mailbox and use 'shared add MAILBOX "
                "--phonebook TITLE', or set office365=false for an on-premises server")
        # Read as MAILBOX (optional: else the first user the sync selects).
        mailbox = _check_len("MAILBOX", args.mailbox, EMAIL_LEN) if args.mailbox else None
        kind, folder = "public-folder", _check_len("--public-folder",
                                                   args.public_folder.strip("/"), NAME_LEN)
    else:
        kind, mailbox = "shared-mailbox", _check_len("MAILBOX", args.mailbox, EMAIL_LEN)
        if "@" not in mailbox:
            raise UsageError(f"{mailbox!r} is not an e-mail address",
                             "give the shared mailbox's primary SMTP address")
        folder = _check_len("--folder", args.folder, NAME_LEN) if args.folder else None
    with RunLock(database.url), database.session() as s:
        existing = find_shared(s, title)
        if existing is not None:
            if (existing.source == kind and (existing.mailbox or "").lower() ==
                    (mailbox or "").lower() and existing.folder == folder):
                print(f"shared phonebook {title!r} is already filled from there")
                return EXIT_OK
            raise UsageError(f"a shared phonebook titled {title!r} exists already "
                             f"({_keeper(existing)})", "choose another title with --phonebook")
        s.add(Phonebook(owner_id=None, title=title, source=kind, mailbox=mailbox, folder=folder))
    where = f"public folder {folder}" if kind == "public-folder" else (
        f"{mailbox}" + (f", folder {folder}" if folder else ""))
    log.log(logs.NOTICE, "shared phonebook %r will be filled from %s on the next sync", title,
            where)
    return EXIT_OK


def _keeper(book: Phonebook) -> str:
    where = book.mailbox or book.folder or ""
    return f"{Origin(book.source).label}{' ' + where if where else ''}"


def _rows(database: Database) -> list[dict[str, Any]]:
    conf = load_settings(database)
    with database.session() as s:
        counts = dict(s.execute(select(Entry.phonebook_id, func.count(Entry.id))
                                .group_by(Entry.phonebook_id)).all())
        books = {b.title: b for b in s.scalars(select(Phonebook).where(
            Phonebook.owner_id.is_(None)).order_by(Phonebook.title))}
        out = []
        if conf.directory_phonebook:
            b = books.get(conf.directory_phonebook)
            out.append({"phonebook": conf.directory_phonebook, "source": "directory",
                        "mailbox": None, "folder": None,
                        "entries": counts.get(b.id, 0) if b is not None else 0})
        for b in books.values():
            if b.source in KINDS:
                out.append({"phonebook": b.title, "source": b.source, "mailbox": b.mailbox,
                            "folder": b.folder, "entries": counts.get(b.id, 0)})
    return out


def shared_list(args: argparse.Namespace) -> int:
    rows = _rows(open_db(args))
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not rows:
        print("no shared phonebooks (see 'shared add' and key directory_phonebook)")
    for r in rows:
        where = {"directory": "the Entra directory", "public-folder": f"public folder "
                 f"{r['folder']}"}.get(r["source"]) or (
            r["mailbox"] + (f", folder {r['folder']}" if r["folder"] else ""))
        print(f"{r['phonebook']}\t{r['source']}\t{where}\t{r['entries']} entries")
    return EXIT_OK


def shared_remove(args: argparse.Namespace) -> int:
    database = open_db(args)
    key = args.mailbox.strip().strip("/")
    with RunLock(database.url), database.session() as s:
        books = [b for b in s.scalars(select(Phonebook).where(
            Phonebook.owner_id.is_(None), Phonebook.source.in_(KINDS)))
            if (b.mailbox or "").lower() == key.lower() or (
                b.source == "public-folder" and b.folder == key)]
        if args.phonebook is not None:
            books = [b for b in books if b.title == args.phonebook]
        if not books:
            raise UsageError(f"no shared phonebook is filled from {key!r}"
                             + (f" under the title {args.phonebook!r}" if args.phonebook
                                else ""), "see 'ucware-contactsync shared list'")
        if len(books) > 1:
            titles = ", ".join(repr(b.title) for b in books)
            raise UsageError(f"{key} fills several shared phonebooks ({titles})",
                             "name one with --phonebook TITLE")
        title = books[0].title
        s.delete(books[0])
    log.log(logs.NOTICE, "shared phonebook %r removed", title)
    return EXIT_OK


RBAC_HINT = ("or, scoped with RBAC for Applications in Exchange Online: "
             "New-ManagementRoleAssignment -App <app id> -Role 'Application Contacts.Read' "
             "-CustomResourceScope <a management "
             "scope that includes {mailbox}>")


def check_shared(database: Database, conf: Settings, choice: Choice,
                 out: Callable[[str], None]) -> int:
    """``check`` for the shared phonebooks: one line each, the missing role and its fix.
    Returns how many failed."""
    from ..sources import Kind, SourceError
    from ..sync.shared import configured
    from .synccmd import shared_source

    with database.session() as s:
        books = configured(s, conf)
    failed = 0
    for book in books:
        try:
            source = shared_source(conf, choice, book)
            try:
                source.check(book.mailbox or "")
            finally:
                source.close()
        except SourceError as exc:
            failed += 1
            hint = exc.hint
            if exc.kind is Kind.ACCESS_DENIED and book.kind == "shared-mailbox" \
                    and choice.api == "graph":
                hint = f"{hint}; {RBAC_HINT.format(mailbox=book.mailbox)}"
            out(f"  {book.label}: FAILED ({exc.kind.value}): {exc.message} — {hint}")
        else:
            out(f"  {book.label}: ok")
    return failed
