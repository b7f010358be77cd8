"""check (pre-flight): the API choice, the token and every selected mailbox."""

from __future__ import annotations

import argparse

from .. import directory, logs
from ..errors import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, ContactSyncError
from ..sources import Kind, SourceError
from .common import chosen_source, load_settings, open_db

log = logs.get("check")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[common], help="pre-flight: token and each mailbox")
    p.add_argument("--user", metavar="EMAIL", action="append", default=[],
                   help="check only this user (repeatable)")
    p.set_defaults(func=check)


def _out(text: str) -> None:
    print(text, flush=True)


def check(args: argparse.Namespace) -> int:
    """Which API and why, the token, then every selected mailbox with the fix for failures."""
    database = open_db(args)
    conf = load_settings(database)
    _out(f"database: ok ({database.engine.url.get_backend_name()})")
    try:
        choice, source = chosen_source(conf)
    except ContactSyncError as exc:
        _out(f"token: FAILED: {exc}")
        raise
    _out(f"api: {choice.api} — {choice.reason}")
    if choice.warning:
        _out(f"warning: {choice.warning}")
    tokens = choice.tokens
    if tokens is not None:
        roles = ", ".join(sorted(tokens.roles())) or "none"
        _out(f"token: ok (roles: {roles})")
    with database.session() as s:
        users = directory.selected_users(s)
        only = {u.lower() for u in args.user}
        targets = [(u.email, u.name) for u in users if not only or (u.email_key in only)]
    if not targets:
        _out("mailboxes: none selected — add users to a group with ews_synccontacts=true")
    failed = 0
    auth_failed = False
    try:
        for email, name in targets:
            if not email:
                _out(f"  {name or '?'}: SKIPPED: no e-mail address on the UC server")
                continue
            try:
                source.check(email)
            except SourceError as exc:
                failed += 1
                _out(f"  {email}: FAILED ({exc.kind.value}): {exc}")
                if exc.kind is Kind.AUTH:
                    auth_failed = True
                    break
            else:
                _out(f"  {email}: ok")
    finally:
        source.close()
    _out(f"phonebook title: {conf.phonebookname!r}; {len(targets)} mailboxes, {failed} failed")
    if auth_failed:
        return EXIT_CONFIG  # like sync: the credentials, not a mailbox, are wrong
    return EXIT_PARTIAL if failed else EXIT_OK
