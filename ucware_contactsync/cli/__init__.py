"""The command line, the same as `ucware-contactsync`, `runner.py` and `-m ucware_contactsync`.

No subcommand means ``sync``, so ``python3 runner.py -v`` is the documented manual import.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError

from .. import history, logs
from ..db import database_failure, resolve_url
from ..errors import EXIT_CONFIG, ContactSyncError
from . import (
    admin,
    arguments,
    configure,
    csvcmd,
    demo,
    historycmd,
    service,
    sharedcmd,
    signals,
    synccmd,
)

log = logs.get("cli")


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_CONFIG)


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # Accepted before and after the subcommand; SUPPRESS keeps the later copy from
    # overwriting a value given before it.
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--db", metavar="URL", default=d,
        help="database URL (else $CONTACTSYNC_DB_URL, else the default SQLite file)")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress
                        else 0, help="more output: -v a line per user, -vv debug and tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="errors only")


def build_parser() -> Parser:
    common = argparse.ArgumentParser(add_help=False)
    _globals(common, suppress=True)
    parser = Parser(
        prog="ucware-contactsync",
        description="Import Outlook contacts (Microsoft 365 / Exchange) and CSV files into "
        "UCware phonebooks. Without a subcommand: sync.",
    )
    _globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in (synccmd, demo, csvcmd, admin, historycmd, configure, sharedcmd, service):
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; ``argv`` None means this process's own (the programs' entry)."""
    restore = signals.install()
    try:
        code = _main(argv)
    except KeyboardInterrupt as exc:  # before logging was set up, or while parsing
        code = signals.code_of(exc)[0]
    if argv is None and code in (130, 143):
        signals.exit_now(code)  # no waiting for reads still running in worker threads
    restore()
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    raw = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(raw)
    if args.command is None:  # bare invocation = sync with defaults
        raw.append("sync")
        args = parser.parse_args(raw)
    arguments.tolerant_output()
    logs.setup(args.verbose, args.quiet)
    try:
        arguments.check(args, raw)
        # Whatever the command writes through the phonebook writer becomes one run in the
        # history (nothing is written for a command that changes nothing).
        with history.recording(history.command_line(raw)) as run:
            code = int(args.func(args) or 0)
            if code:
                run.note(outcome=run.outcome or f"exit {code}")
            return code
    except ContactSyncError as exc:
        log.error("error: %s", exc, exc_info=args.verbose >= 2)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (signals.py)
        code, name = signals.code_of(exc)
        log.error("error: interrupted by %s: stopped; every phonebook is as before or fully "
                  "updated, nothing half-written", name)
        return code
    except SQLAlchemyError as exc:  # the database failed outside a phonebook's transaction
        failure = database_failure(exc, _url(args))
        if failure is None:
            return _unexpected(args, exc)
        log.error("error: %s", failure, exc_info=args.verbose >= 2)
        return failure.exit_code
    except Exception as exc:  # the last net: one line, traceback only with -vv
        return _unexpected(args, exc)


def _unexpected(args: argparse.Namespace, exc: Exception) -> int:
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    log.error("unexpected error: %s: %s (run with -vv for details and report it)",
              type(exc).__name__, first[:300], exc_info=args.verbose >= 2)
    return EXIT_CONFIG


def _url(args: argparse.Namespace) -> str | None:
    try:
        return resolve_url(getattr(args, "db", None))
    except ContactSyncError:
        return None
