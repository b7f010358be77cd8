"""import-csv."""

from __future__ import annotations

import argparse

from ..errors import ContactSyncError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import-csv", parents=[common], help="import a CSV file into phonebooks")
    p.add_argument("file")
    p.add_argument("--user", metavar="EMAIL", help="owner for files without an owner column")
    p.add_argument("--phonebook", metavar="NAME", help="title for files without such a column")
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    p.set_defaults(func=import_csv)


def import_csv(args: argparse.Namespace) -> int:
    raise ContactSyncError("import-csv is not available yet in this build")
