"""sync: the default command."""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from .. import directory, history, logs
from ..db import Database
from ..settings import Settings
from ..sources import Choice, ContactSource, Kind, SourceError, graph_tokens
from ..sync.engine import SyncEngine, log_result
from ..sync.lock import RunLock
from ..sync.shared import SharedBook, SharedRun, SharedSync, configured
from .common import chosen_source, load_settings, open_db

log = logs.get("sync")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("sync", parents=[common], help="import Outlook contacts (the default)")
    p.add_argument("--user", metavar="EMAIL", action="append", default=[],
                   help="only this user (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    p.add_argument("--full", action="store_true", help="read everything, ignore stored states")
    p.add_argument("--force", action="store_true",
                   help="allow a sync that would remove more than guard_percent of a "
                        "phonebook")
    p.set_defaults(func=sync)


def sync(args: argparse.Namespace) -> int:
    database = open_db(args)
    conf = load_settings(database)
    # A dry run writes nothing, so it may run beside the nightly job.
    with nullcontext() if args.dry_run else RunLock(database.url):
        choice, source = chosen_source(conf)
        history.note(api=choice.api)
        log.info("using %s: %s", choice.label, choice.reason)
        if choice.warning:
            log.warning("warning: %s", choice.warning)
        try:
            result = SyncEngine(database, conf, source, only_users=args.user,
                                dry_run=args.dry_run, full=args.full, force=args.force).run()
        finally:
            source.close()
        log_result(result)
        # The shared (company) phonebooks, in the same run under the same lock; --user
        # limits a run to personal phonebooks.
        shared = None if args.user or result.aborted else sync_shared(
            database, conf, choice, dry_run=args.dry_run, full=args.full, force=args.force)
    history.note(outcome=result.summary() + ("" if shared is None else f"; {shared.summary()}"))
    if shared is None:
        return result.exit_code
    return max(result.exit_code, shared.exit_code)


def sync_shared(database: Database, conf: Settings, choice: Choice, *, dry_run: bool,
                full: bool, force: bool) -> SharedRun | None:
    """Sync the shared phonebooks; None when there are none."""
    with database.session() as s:
        books = configured(s, conf)
        read_as = next((u.email for u in directory.selected_users(s) if u.email), "")
    if not books:
        return None
    run = SharedSync(database, conf, lambda book: shared_source(conf, choice, book),
                     dry_run=dry_run, full=full, force=force, read_as=read_as).run(books)
    log.log(logs.NOTICE, run.summary())
    return run


def shared_source(conf: Settings, choice: Choice, book: SharedBook) -> ContactSource:
    """The source that fills a shared phonebook (raises SourceError to fail only that one)."""
    if book.kind == "directory":
        if not conf.office365:
            raise SourceError(Kind.ACCESS_DENIED, "the directory phonebook is read from "
                              "Microsoft Entra ID through Microsoft Graph, which on-premises "
                              "Exchange does not have", "clear directory_phonebook, or use "
                              "a CSV export of the directory")
        from ..sources.graph_directory import DirectorySource

        tokens = choice.tokens if choice.api == "graph" and choice.tokens else None
        return DirectorySource(conf, tokens=tokens or graph_tokens(conf))
    if book.kind == "public-folder":
        from ..sources.public_folders import PublicFolderSource

        return PublicFolderSource(conf, book.folder or "")
    from ..sources.shared_mailbox import open_shared

    return open_shared(conf, choice.api, book.folder, choice.tokens)

