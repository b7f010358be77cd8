"""history, history show, undo: what each run changed, and taking it back."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from .. import directory, history, logs
from ..errors import EXIT_OK, EXIT_PARTIAL, UsageError
from ..sync.lock import RunLock
from ..undo import undo as run_undo
from .common import open_db

log = logs.get("history")

SYMBOL = {"added": "+", "updated": "~", "removed": "-"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("history", parents=[common],
                       help="the runs that changed phonebooks, newest first")
    p.add_argument("--user", metavar="EMAIL", help="only phonebooks of this user")
    p.add_argument("--phonebook", metavar="TITLE", help="only phonebooks with this title")
    p.add_argument("--since", metavar="DATE", help="only runs since DATE (local time, "
                   "e.g. 2026-11-30 or 2026-11-30T18:00)")
    p.add_argument("--json", action="store_true", help="JSON list (the documented shape)")
    p.set_defaults(func=history_list)
    hsub = p.add_subparsers(dest="history_command", metavar="ACTION")
    a = hsub.add_parser("show", parents=[common], help="every entry one run changed")
    a.add_argument("run", type=int, metavar="RUN")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=history_show)

    p = sub.add_parser("undo", parents=[common], help="take back what one run changed")
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("--user", metavar="EMAIL", help="only the phonebooks of this user")
    p.add_argument("--dry-run", action="store_true", help="show what would happen, change nothing")
    p.set_defaults(func=undo)


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _dump(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _book_line(b: dict[str, Any]) -> str:
    return (f"    {b['owner'] or '(shared)'} / {b['name']}: {b['added']} added, "
            f"{b['updated']} updated, {b['removed']} removed")


def _run_line(r: dict[str, Any]) -> str:
    return f"run {r['run']}  {_local(r['started'])}  {r['command']}  — {r['outcome']}"


def history_list(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = history.parse_since(args.since)
        except ValueError:
            raise UsageError(f"--since {args.since!r} is not a date",
                             "write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    database = open_db(args)
    try:
        with database.session() as s:
            if args.user:
                directory.require_user(s, args.user)
            found = history.runs(s, owner=args.user, title=args.phonebook, since=since)
    finally:
        database.dispose()
    if args.json:
        _dump(found)
        return EXIT_OK
    for r in found:
        print(_run_line(r))
        for b in r["phonebooks"]:
            print(_book_line(b))
    if not found:
        print("no run changed a phonebook" + (" in that selection" if args.user or
              args.phonebook or args.since else ""), file=sys.stderr)
    return EXIT_OK


def _numbers(entry: dict[str, Any] | None) -> str:
    if not entry:
        return ""
    return ", ".join(f"{n['type']}: {n['number']}" for n in entry["numbers"])


def history_show(args: argparse.Namespace) -> int:
    database = open_db(args)
    try:
        with database.session() as s:
            found = history.show(s, args.run)
    finally:
        database.dispose()
    if found is None:
        raise UsageError(f"there is no run {args.run}",
                         "'ucware-contactsync history' lists the runs")
    if args.json:
        _dump(found)
        return EXIT_OK
    print(_run_line(found))
    where = None
    for c in found["changes"]:
        if (c["owner"], c["phonebook"]) != where:
            where = (c["owner"], c["phonebook"])
            print(f"    {c['owner'] or '(shared)'} / {c['phonebook']}")
        entry = c["after"] or c["before"]
        line = f"      {SYMBOL[c['action']]} {entry['display_name']}  {_numbers(entry)}"
        if c["action"] == "updated":
            line += f"  (was: {c['before']['display_name']}  {_numbers(c['before'])})"
        print(line.rstrip())
    return EXIT_OK


def undo(args: argparse.Namespace) -> int:
    database = open_db(args)
    try:
        with nullcontext() if args.dry_run else RunLock(database.url):
            if args.user:
                with database.session() as s:
                    directory.require_user(s, args.user)
            result = run_undo(database, args.run, owner=args.user, dry_run=args.dry_run)
    finally:
        database.dispose()
    for b in result.books:
        for line in b.refused:
            log.warning("refused: %s", line)
        suffix = " (dry run)" if args.dry_run else ""
        if not args.quiet or args.dry_run:
            print(f"{b.summary()}{suffix}")
    if result.synced:
        log.warning("note: run %d was a sync and the mailbox stays the source of truth: the "
                    "next sync reads %s in full and makes the same changes again unless the "
                    "contacts are restored in Outlook (restored entries keep their source ids, "
                    "so they are matched, not duplicated)", result.run,
                    "this mailbox" if len({b.owner for b in result.books}) == 1
                    else "these mailboxes")
    if args.dry_run:
        print("dry run: nothing was changed")
    history.note(outcome=f"undo of run {result.run}: " + "; ".join(
        b.summary() for b in result.books))
    return EXIT_PARTIAL if result.refused else EXIT_OK
