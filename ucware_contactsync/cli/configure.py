"""``configure``: the installer's questions, for pip installs and for the Debian package.

Interactive (a terminal)::

    ucware-contactsync configure

asks what the Debian installer (debconf) asks: Office 365 yes/no; then the Directory (tenant)
ID, the Application (client) ID and the client secret, or for an on-premises Exchange Server
the EWS URL, the service account and its password. Each answer is checked with
:func:`settings.validate` and asked again when it is wrong. Secrets are read with
:func:`getpass.getpass` (not echoed) and never printed or logged; an empty secret keeps the
stored one. Nothing is saved before the last answer; Ctrl-C leaves the store as it was.

Non-interactive (the Debian maintainer scripts, provisioning tools)::

    printf 'office365=true\\ntenant_id=%s\\nclient_id=%s\\nclient_secret=%s\\n' \\
        "$TENANT" "$CLIENT" "$SECRET" | ucware-contactsync configure --batch

reads ``key=value`` lines (any key of the key-value store) from standard input, so a secret
never appears on a command line. Blank lines and lines starting with ``#`` are skipped; an
empty value leaves the key as it is. Valid answers are stored even when others are wrong;
the wrong ones are named on stderr (never with a secret's value) and the exit code is 2.

Both forms create the schema first (``db init``) when the database has none yet.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import warnings
from collections.abc import Callable, Iterable

from .. import db as dbmod
from .. import logs, settings, settings_store
from ..db import Database
from ..errors import EXIT_CONFIG, EXIT_OK, ConfigError, DatabaseError, UsageError

log = logs.get("cli.configure")

O365_KEYS = ("tenant_id", "client_id", "client_secret")
ONPREM_KEYS = ("ews_url", "ews_username", "ews_password", "ca_bundle")
OPTIONAL = frozenset({"ca_bundle"})  # Enter leaves it empty
# Empty means "none" here, also in --batch (the debconf answer "" switches it off).
CLEARABLE = frozenset({"directory_phonebook"})

LABELS = {
    "tenant_id": "Directory (tenant) ID",
    "client_id": "Application (client) ID",
    "client_secret": "Secret (value of the client secret; input not shown)",
    "ews_url": "EWS URL of the Exchange Server (https://…/EWS/Exchange.asmx, or its host name)",
    "ews_username": "Service account (DOMAIN\\user or user@example.com)",
    "ews_password": "Password of the service account (input not shown)",
    "ca_bundle": "CA file (PEM) of a private CA that issued the server's certificate "
                 "(Enter: the system's CAs)",
    "directory_phonebook": "Title of the company phonebook from the directory (needs "
                           "User.Read.All; Enter: none)",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("configure", parents=[common],
                            help="answer the installer's questions on a terminal")
    parser.add_argument(
        "--batch", action="store_true",
        help="read key=value lines from standard input instead of asking (for scripts; "
             "keeps secrets off the command line); an empty value keeps the stored one")
    parser.set_defaults(func=configure)


def configure(args: argparse.Namespace) -> int:
    database = open_or_init(args.db)
    try:
        if args.batch:
            return batch(database, sys.stdin)
        if not sys.stdin.isatty():
            raise UsageError(
                "configure asks its questions on a terminal, and standard input is none",
                "for scripts use 'ucware-contactsync configure --batch' with key=value lines "
                "on standard input")
        return interactive(database)
    finally:
        database.dispose()


def open_or_init(cli_url: str | None) -> Database:
    """The database; its schema is created first (``db init``) when it has none yet."""
    database = Database(dbmod.resolve_url(cli_url))
    dbmod.check_connection(database.engine)
    try:
        dbmod.require_schema(database.engine)
    except DatabaseError:
        head = dbmod.upgrade(database.engine)
        log.log(logs.NOTICE, "created the schema of %s (revision %s)",
                dbmod.redact(database.url), head)
    return database


# -- non-interactive ---------------------------------------------------------------------------
def batch(database: Database, stream: Iterable[str]) -> int:
    answers: dict[str, str] = {}
    errors: list[str] = []
    for lineno, raw in enumerate(stream, 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:  # never echo the line: it may be a secret
            errors.append(f"line {lineno}: expected key=value")
            continue
        if key not in settings.KEYS:
            errors.append(f"line {lineno}: unknown key {key!r} "
                          f"(known keys: {', '.join(settings.KEYS)})")
            continue
        if key in settings.SECRET_KEYS:
            logs.register_secret(value)
        if value == "" and key not in CLEARABLE:
            answers.pop(key, None)
            continue
        try:
            answers[key] = settings.validate(key, value)
        except ConfigError as exc:
            errors.append(exc.message)
    if answers:
        _store(database, answers)
        log.log(logs.NOTICE, "configure: stored %s", ", ".join(answers))
    else:
        log.log(logs.NOTICE, "configure: nothing to change")
    for err in errors:
        log.error("configure: %s", err)
    return EXIT_CONFIG if errors else EXIT_OK


def _store(database: Database, answers: dict[str, str]) -> None:
    with database.session() as s:  # one transaction: all answers or none
        for key, value in answers.items():
            settings_store.set_value(s, key, value)


# -- interactive -------------------------------------------------------------------------------
def interactive(database: Database,
                read: Callable[[str], str] = input,
                read_secret: Callable[[str], str] | None = None) -> int:
    read_secret = read_secret or _getpass
    with database.session() as s:
        current = settings_store.read_raw(s)
    for key in settings.SECRET_KEYS:
        logs.register_secret(current.get(key))

    out = sys.stdout
    out.write("ucware-contactsync: the installer's questions. Enter keeps the value in "
              "[brackets];\nCtrl-C stops without saving anything.\n\n")
    out.flush()

    answers: dict[str, str] = {}
    stored_o365 = current.get("office365") or settings.KEYS["office365"].default
    o365 = _ask_bool(read, "Import contacts from Office 365 (office365.com)?",
                     stored_o365 == "true")
    answers["office365"] = "true" if o365 else "false"
    kept: list[str] = []
    for key in (O365_KEYS if o365 else ONPREM_KEYS):
        if key in settings.SECRET_KEYS:
            value = _ask_secret(read_secret, key, bool(current.get(key)))
            if value is None:
                kept.append(key)
                continue
        else:
            default = current.get(key, "")
            if key == "ews_url" and default == settings.KEYS["ews_url"].default:
                default = ""  # Exchange Online's EWS is no on-premises answer
            value = _ask(read, key, default, optional=key in OPTIONAL)
            if not value:
                continue
        answers[key] = value

    if o365:
        answers["directory_phonebook"] = _ask_title(read, current.get("directory_phonebook", ""))
    _store(database, answers)
    out.write("\nSaved:\n")
    for key, value in answers.items():
        shown = settings.MASK + " (new)" if key in settings.SECRET_KEYS else value
        out.write(f"  {key:<14} {shown}\n")
    for key in kept:
        out.write(f"  {key:<14} {settings.MASK} (unchanged)\n")
    tested = ("the token" if o365 else "the service account, its impersonation right")
    out.write(f"\nNext: 'ucware-contactsync check' tests {tested} and each mailbox.\n")
    out.flush()
    log.info("configure: stored %s", ", ".join(answers))
    return EXIT_OK


def _prompt(read: Callable[[str], str], text: str) -> str:
    try:
        return read(text)
    except EOFError:
        sys.stdout.write("\n")
        raise UsageError("no answer (end of input); nothing was saved") from None


def _ask_bool(read: Callable[[str], str], question: str, default: bool) -> bool:
    hint = "[Y/n]" if default else "[y/N]"
    while True:
        answer = _prompt(read, f"{question} {hint} ").strip().lower()
        if not answer:
            return default
        if answer in ("y", "yes", "j", "ja", "true", "1"):
            return True
        if answer in ("n", "no", "nein", "false", "0"):
            return False
        sys.stdout.write("  Please answer yes or no.\n")


def _ask(read: Callable[[str], str], key: str, default: str, optional: bool = False) -> str:
    label = LABELS[key]
    while True:
        shown = f" [{default}]" if default else ""
        answer = _prompt(read, f"{label}{shown}: ").strip()
        if not answer:
            if default or optional:
                return default
            sys.stdout.write("  An answer is required.\n")
            continue
        try:
            return settings.validate(key, answer)
        except ConfigError as exc:
            sys.stdout.write(f"  Invalid: {exc.message.split(': ', 1)[-1]}. Please try again.\n")


def _ask_title(read: Callable[[str], str], stored: str) -> str:
    """The directory phonebook's title; Enter keeps the stored one, '-' means none."""
    label = LABELS["directory_phonebook"]
    hint = f" [{stored}; '-' for none]" if stored else ""
    while True:
        answer = _prompt(read, f"{label}{hint}: ").strip()
        if answer == "-" or not (answer or stored):
            return ""
        try:
            return settings.validate("directory_phonebook", answer or stored)
        except ConfigError as exc:
            sys.stdout.write(f"  Invalid: {exc.message.split(': ', 1)[-1]}. Please try again.\n")


def _ask_secret(read_secret: Callable[[str], str], key: str, stored: bool) -> str | None:
    """The new secret, or None to keep the stored one."""
    label = LABELS[key]
    while True:
        hint = " [Enter keeps the stored one]" if stored else ""
        answer = read_secret(f"{label}{hint}: ")
        if answer:
            logs.register_secret(answer)
            return settings.validate(key, answer)
        if stored:
            return None
        sys.stdout.write("  An answer is required.\n")
        sys.stdout.flush()


def _getpass(prompt: str) -> str:
    """getpass, but never its fallback that would echo the secret."""
    sys.stdout.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise UsageError(
                "cannot switch off echo on this terminal, so the secret is not asked here",
                "use 'ucware-contactsync configure --batch' or 'config set'") from None
        except EOFError:
            sys.stdout.write("\n")
            raise UsageError("no answer (end of input); nothing was saved") from None
