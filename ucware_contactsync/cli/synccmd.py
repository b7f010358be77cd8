"""sync (the default command) and demo."""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from .. import logs
from ..errors import EXIT_PARTIAL, AuthError, ContactSyncError
from ..settings import Settings
from ..sources import Choice, ContactSource, Kind, SourceError, choose, open_source
from ..sync.engine import SyncEngine, log_result
from ..sync.lock import RunLock
from .common import load_settings, open_db

log = logs.get("sync")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("sync", parents=[common], help="import Outlook contacts (the default)")
    p.add_argument("--user", metavar="EMAIL", action="append", default=[],
                   help="only this user (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    p.add_argument("--full", action="store_true", help="read everything, ignore stored states")
    p.add_argument("--force", action="store_true",
                   help="allow a sync that would empty a full phonebook")
    p.set_defaults(func=sync)
    p = sub.add_parser("demo", parents=[common],
                       help="run the whole job against a bundled fake Exchange Online")
    p.add_argument("--api", choices=("auto", "graph", "ews"), default="auto",
                   help="which API the demo uses (default: auto, which picks Graph)")
    p.set_defaults(func=demo)


def source_error(exc: SourceError) -> ContactSyncError:
    """A failure before any mailbox was read: bad app credentials (2) or an outage (1)."""
    if exc.kind is Kind.AUTH:
        return AuthError(exc.message, exc.hint)
    err = ContactSyncError(exc.message, exc.hint)
    err.exit_code = EXIT_PARTIAL
    return err


def chosen_source(conf: Settings) -> tuple[Choice, ContactSource]:
    """The API to use (key ``api``, the token's roles) and its source, or an error to exit on."""
    try:
        choice = choose(conf)
        return choice, open_source(conf, choice, include_subfolders=conf.subfolders)
    except SourceError as exc:
        raise source_error(exc) from None


def sync(args: argparse.Namespace) -> int:
    database = open_db(args)
    conf = load_settings(database)
    # A dry run writes nothing, so it may run beside the nightly job.
    with nullcontext() if args.dry_run else RunLock(database.url):
        choice, source = chosen_source(conf)
        log.info("using %s: %s", "Microsoft Graph" if choice.api == "graph" else "EWS",
                 choice.reason)
        if choice.warning:
            log.warning("warning: %s", choice.warning)
        try:
            result = SyncEngine(database, conf, source, only_users=args.user,
                                dry_run=args.dry_run, full=args.full, force=args.force).run()
        finally:
            source.close()
    log_result(result)
    return result.exit_code


def demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)
