"""check (pre-flight): the API choice, the token and every selected mailbox."""

from __future__ import annotations

import argparse

from .. import directory, logs
from ..errors import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, ContactSyncError
from ..sources import Kind, SourceError
from .common import chosen_source, load_settings, open_db
from .sharedcmd import check_shared

log = logs.get("check")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
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
    on_premises = not conf.office365 and choice.api == "ews"
    if on_premises:
        trust = f"private CA {conf.ca_bundle}" if conf.ca_bundle else "the system's CAs"
        _out(f"service account: {conf.ews_username} (NTLM) at {conf.ews_url}; TLS trusts {trust}")
    with database.session() as s:
        users = directory.selected_users(s)
        only = {u.lower() for u in args.user}
        targets = [(u.email, u.name) for u in users if not only or (u.email_key in only)]
    if not targets:
        _out("mailboxes: none selected — add users to a group with ews_synccontacts=true")
    failed = denied = 0
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
                denied += exc.kind is Kind.ACCESS_DENIED
                _out(f"  {email}: FAILED ({exc.kind.value}): {exc}")
                if exc.kind is Kind.AUTH:
                    auth_failed = True
                    break
            else:
                _out(f"  {email}: ok")
    finally:
        source.close()
    if on_premises and denied:
        _out(impersonation_line(conf.ews_username, denied, len(targets)))
    _out(f"phonebook title: {conf.phonebookname!r}; {len(targets)} mailboxes, {failed} failed")
    if not auth_failed and not args.user:
        failed += check_shared(database, conf, choice, _out)
    if auth_failed:
        return EXIT_CONFIG  # like sync: the credentials, not a mailbox, are wrong
    return EXIT_PARTIAL if failed else EXIT_OK


def impersonation_line(account: str, denied: int, total: int) -> str:
    """What a service account without (enough) impersonation right needs, in the Exchange
    Management Shell's words."""
    if denied >= total:
        return (f"impersonation: FAILED: {account} may impersonate none of these mailboxes — "
                "assign it the ApplicationImpersonation role: New-ManagementRoleAssignment "
                f"-Name ucware-contactsync -Role ApplicationImpersonation -User '{account}'")
    return (f"impersonation: {denied} of {total} mailboxes denied — the role assignment of "
            f"{account} has a management scope without them: widen the scope "
            "(Set-ManagementScope) or add the mailboxes to it")
