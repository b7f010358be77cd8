"""sync: the default command."""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from .. import history, logs
from ..sync.engine import SyncEngine, log_result
from ..sync.lock import RunLock
from .common import chosen_source, load_settings, open_db

log = logs.get("sync")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    history.note(outcome=result.summary())
    return result.exit_code
