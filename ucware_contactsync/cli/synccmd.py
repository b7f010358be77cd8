"""sync (the default command) and demo."""

from __future__ import annotations

import argparse

from ..errors import ContactSyncError


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
    p.set_defaults(func=demo)


def sync(args: argparse.Namespace) -> int:
    raise ContactSyncError("sync is not available yet in this build")


def demo(args: argparse.Namespace) -> int:
    raise ContactSyncError("demo is not available yet in this build")
