"""import-csv and import-vcard: fill phonebooks from a file; see docs/csv-format.md."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from .. import logs
from ..csvimport import ImportResult
from ..csvimport import import_csv as run_import
from ..csvimport.reader import check_file
from ..db import Database
from ..errors import EXIT_OK
from ..sync.lock import RunLock
from .common import open_db

log = logs.get("csv")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import-csv", parents=[common], help="import a CSV file into phonebooks")
    p.add_argument("file")
    p.add_argument("--user", metavar="EMAIL", help="owner for files without an owner column")
    p.add_argument("--phonebook", metavar="NAME", help="title for files without such a column")
    p.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    p.add_argument("--strict", action="store_true",
                   help="refuse a file with a column of phone numbers that is not imported")
    p.set_defaults(func=import_csv)
    v = sub.add_parser("import-vcard", parents=[common],
                       help="import a vCard (.vcf) file into a phonebook")
    v.add_argument("file")
    v.add_argument("--user", metavar="EMAIL", help="owner of the phonebook")
    v.add_argument("--phonebook", metavar="NAME", help="title of the phonebook")
    v.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    v.set_defaults(func=import_vcard)


def import_csv(args: argparse.Namespace) -> int:
    result = _locked(args, lambda db: run_import(
        db, args.file, user=args.user, phonebook=args.phonebook, dry_run=args.dry_run,
        strict=args.strict))
    log.info("%s: %s, %s, %s-separated, %d rows", result.path, result.format, result.encoding,
             result.delimiter, result.rows)
    for column in result.unmapped_numbers:  # never drop phone numbers silently
        log.warning("%s: column %r holds phone numbers but was not imported: no recognised "
                    "format has it (rename it, see docs/csv-format.md; --strict refuses "
                    "such files)", result.path, column)
    return _summary(args, result)


def import_vcard(args: argparse.Namespace) -> int:
    from ..vcardimport import import_vcard as run_vcard  # vobject only when needed

    result = _locked(args, lambda db: run_vcard(
        db, args.file, user=args.user, phonebook=args.phonebook, dry_run=args.dry_run),
        "vCard (.vcf)")
    log.info("%s: %s, %s, %d cards", result.path, result.format, result.encoding, result.rows)
    return _summary(args, result)


def _locked(args: argparse.Namespace, run: Callable[[Database], ImportResult],
            what: str = "CSV") -> ImportResult:
    # A FIFO, a device or a huge file is refused before the lock: it must never hold up the
    # nightly sync (which would give up with exit 75 meanwhile).
    check_file(Path(args.file), what)
    database = open_db(args)
    # Same lock as the sync: an import never writes while the nightly run does.
    try:
        with nullcontext() if args.dry_run else RunLock(database.url):
            return run(database)
    finally:
        database.dispose()


def _summary(args: argparse.Namespace, result: ImportResult) -> int:
    # The summary is the command's output (stdout); -q keeps only errors.
    for book in result.books:
        if args.dry_run:
            print(f"{book.summary()} (dry run)")
            for line in book.lines:
                print(f"  {line}")
        elif not args.quiet:
            print(book.summary())
    if args.dry_run:
        print("dry run: nothing was written")
    return EXIT_OK
