"""db, users, groups, config, phonebook and lookup: the UC server's admin side."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy.orm import Session

from .. import db as dbmod
from .. import directory, logs, phonebook, settings, settings_store
from ..contact import NUMBER_TYPES, Contact, PhoneNumber
from ..errors import EXIT_OK, EXIT_PARTIAL, UsageError
from ..lookup import lookup, refresh_e164
from ..ownership import Origin
from .common import load_settings, open_db

log = logs.get("cli")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("db", parents=[common], help="database schema")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dsub.add_parser("init", parents=[common], help="create or upgrade the schema"
                    ).set_defaults(func=db_init)

    p = sub.add_parser("users", parents=[common], help="users of the UC server")
    usub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    a = usub.add_parser("add", parents=[common], help="add a user")
    a.add_argument("email")
    a.add_argument("--name", default="")
    a.set_defaults(func=users_add)
    usub.add_parser("list", parents=[common], help="list users").set_defaults(func=users_list)

    p = sub.add_parser("groups", parents=[common], help="user groups and their parameters")
    gsub = p.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    a = gsub.add_parser("add", parents=[common], help="add a group")
    a.add_argument("name")
    a.set_defaults(func=groups_add)
    a = gsub.add_parser("set", parents=[common], help="set a group parameter")
    a.add_argument("group")
    a.add_argument("param")
    a.add_argument("value")
    a.set_defaults(func=groups_set)
    a = gsub.add_parser("add-member", parents=[common], help="add a user to a group")
    a.add_argument("group")
    a.add_argument("email")
    a.set_defaults(func=groups_add_member)

    p = sub.add_parser("config", parents=[common], help="keys of the key-value store")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    a = csub.add_parser("get", parents=[common], help="print one key")
    a.add_argument("key")
    a.set_defaults(func=config_get)
    a = csub.add_parser("set", parents=[common], help="set one key (empty value = default)")
    a.add_argument("key")
    a.add_argument("value")
    a.set_defaults(func=config_set)
    csub.add_parser("list", parents=[common], help="all keys, secrets masked"
                    ).set_defaults(func=config_list)

    p = sub.add_parser("phonebook", parents=[common], help="show phonebooks, add entries by hand")
    psub = p.add_subparsers(dest="phonebook_command", metavar="ACTION", required=True)
    a = psub.add_parser("show", parents=[common], help="print phonebooks")
    a.add_argument("--user", metavar="EMAIL")
    a.add_argument("--json", action="store_true", help="JSON list (the documented shape)")
    a.set_defaults(func=phonebook_show)
    a = psub.add_parser("add", parents=[common], help="add an entry by hand, as in the UCC client")
    a.add_argument("--user", metavar="EMAIL", required=True)
    a.add_argument("--phonebook", metavar="TITLE", help="default: key phonebookname")
    a.add_argument("--name", required=True)
    a.add_argument("--company", default="")
    a.add_argument("--number", metavar="TYPE:NUMBER", action="append", default=[],
                   help=f"repeatable; TYPE one of {', '.join(NUMBER_TYPES)}")
    a.set_defaults(func=phonebook_add)

    p = sub.add_parser("lookup", parents=[common], help="caller-ID: who owns this number")
    p.add_argument("number")
    p.add_argument("--user", metavar="EMAIL")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lookup_cmd)


def db_init(args: argparse.Namespace) -> int:
    database = open_db(args, schema=False)
    head = dbmod.upgrade(database.engine)
    log.log(logs.NOTICE, "schema of %s is at revision %s", dbmod.redact(database.url), head)
    return EXIT_OK


def users_add(args: argparse.Namespace) -> int:
    database = open_db(args)
    with database.session() as s:
        user = directory.add_user(s, args.email, args.name)
        log.log(logs.NOTICE, "user %s added (id %d)", user.email, user.id)
    return EXIT_OK


def users_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ..model import User

    with open_db(args).session() as s:
        for u in s.scalars(select(User).order_by(User.email_key)):
            print(f"{u.email or '-'}\t{u.name}")
    return EXIT_OK


def groups_add(args: argparse.Namespace) -> int:
    with open_db(args).session() as s:
        directory.add_group(s, args.name)
    log.log(logs.NOTICE, "group %s added", args.name)
    return EXIT_OK


def groups_set(args: argparse.Namespace) -> int:
    with open_db(args).session() as s:
        directory.set_param(s, args.group, args.param, args.value)
    log.log(logs.NOTICE, "group %s: %s = %s", args.group, args.param, args.value)
    return EXIT_OK


def groups_add_member(args: argparse.Namespace) -> int:
    with open_db(args).session() as s:
        added = directory.add_member(s, args.group, args.email)
    log.log(logs.NOTICE, "%s %s group %s", args.email,
            "added to" if added else "is already in", args.group)
    return EXIT_OK


def config_get(args: argparse.Namespace) -> int:
    with open_db(args).session() as s:
        for key, shown, _default in settings_store.listing(s):
            if key == args.key:
                print(shown)
                return EXIT_OK
    settings.validate(args.key, "")  # raises the "unknown key" error
    return EXIT_OK


def config_set(args: argparse.Namespace) -> int:
    database = open_db(args)
    with database.session() as s:
        if args.value == "":
            settings_store.reset(s, args.key)
            log.log(logs.NOTICE, "%s reset to its default", args.key)
            _refresh_numbers(s, args.key)
            return EXIT_OK
        value = settings_store.set_value(s, args.key, args.value)
        _refresh_numbers(s, args.key)
    shown = settings.MASK if args.key in settings.SECRET_KEYS else value
    log.log(logs.NOTICE, "%s = %s", args.key, shown)
    return EXIT_OK


def _refresh_numbers(s: Session, key: str) -> None:
    """The E.164 of stored numbers depends on these keys: recompute them in the same
    transaction, so caller-ID never mixes old and new rules."""
    if key not in ("default_region", "area_code"):
        return
    conf = settings_store.load(s)
    n = refresh_e164(s.connection(), conf.default_region, conf.area_code)
    if n:
        log.log(logs.NOTICE, "%d stored numbers got a new E.164 for caller-ID", n)


def config_list(args: argparse.Namespace) -> int:
    with open_db(args).session() as s:
        rows = settings_store.listing(s)
    width = max(len(k) for k, _, _ in rows)
    for key, shown, is_default in rows:
        note = "(not set)" if not shown else ("(default)" if is_default else "")
        print(f"{key:<{width}}  {shown}  {note}".rstrip())
    return EXIT_OK


def phonebook_show(args: argparse.Namespace) -> int:
    with open_db(args).session() as s:
        owner = directory.require_user(s, args.user) if args.user else None
        books = [phonebook.to_json(b) for b in phonebook.load_phonebooks(s, owner)]
    if args.json:
        json.dump(books, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for b in books:
        shown = b["owner"] or "shared"
        print(f"{shown} / {b['name']} ({b['source']}, {len(b['entries'])} entries)")
        for e in b["entries"]:
            nums = ", ".join(f"{n['type']}: {n['number']}" for n in e["numbers"])
            mark = "" if e["source_id"] else "  [by hand]"
            print(f"  {e['display_name']}{'  — ' + e['company'] if e['company'] else ''}"
                  f"{'  ' + nums if nums else ''}{mark}")
    return EXIT_OK


def parse_number_arg(text: str) -> PhoneNumber:
    kind, sep, number = text.partition(":")
    if not sep or not number.strip():
        raise UsageError(f"--number {text!r} must be TYPE:NUMBER, e.g. mobile:0171 1234567")
    if kind not in NUMBER_TYPES:
        raise UsageError(f"unknown number type {kind!r}", f"use one of {', '.join(NUMBER_TYPES)}")
    return PhoneNumber(kind, number.strip())


def phonebook_add(args: argparse.Namespace) -> int:
    numbers = tuple(parse_number_arg(n) for n in args.number)
    database = open_db(args)
    conf = load_settings(database)
    title = args.phonebook or conf.phonebookname
    with database.session() as s:
        user = directory.require_user(s, args.user)
        # Typed into the title the sync keeps: that is the synced phonebook to be.
        reserved = phonebook.reserved_for(s, user, title, conf.phonebookname)
        book = phonebook.writable_phonebook(s, user, title, Origin.HAND, reserved)
        assert book is not None
        phonebook.add_manual_entry(
            s, book, Contact(display_name=args.name, company=args.company, numbers=numbers),
            conf.default_region, conf.area_code,
        )
    log.log(logs.NOTICE, "added %s to %s / %s", args.name, args.user, title)
    return EXIT_OK


def lookup_cmd(args: argparse.Namespace) -> int:
    database = open_db(args)
    conf = load_settings(database)
    with database.session() as s:
        owner = directory.require_user(s, args.user) if args.user else None
        hits = lookup(s, args.number, conf.default_region, owner, conf.area_code)
    if args.json:
        json.dump(hits, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for h in hits:
            print(f"{h['display_name']}\t{h['type']}: {h['number']}\t"
                  f"({h['owner'] or 'shared'} / {h['phonebook']})")
        if not hits:
            print(f"no entry has the number {args.number}", file=sys.stderr)
    return EXIT_OK if hits else EXIT_PARTIAL
