"""Caller-ID through the command line: the key area_code, callers in every format, and no
hit for an E.164 that is a guess (stored by an older version)."""

from __future__ import annotations

import json

from sqlalchemy import update

from ucware_contactsync.model import Number


def _names(r) -> set[str]:  # type: ignore[no-untyped-def]
    hits = json.loads(r.out)
    assert r.code == (0 if hits else 1), r.err  # exit 1: no entry has the number
    return {h["display_name"] for h in hits}


def test_area_code_gives_local_numbers_an_e164(cli):
    cli("users", "add", "anna@contoso.de")
    add = ("phonebook", "add", "--user", "anna@contoso.de", "--phonebook", "Kunden")
    assert cli(*add, "--name", "Ohne Vorwahl", "--number", "business:123456").code == 0
    # Without area_code the local number is kept as written but never matched.
    assert _names(cli("lookup", "+4989123456", "--json")) == set()
    r = cli("config", "set", "area_code", "(0)89")
    assert r.code == 0, r.err
    assert cli("config", "get", "area_code").out.strip() == "89"
    # Setting the key recomputes the stored numbers: the entry added before is found now.
    assert "1 stored numbers got a new E.164" in r.err
    assert _names(cli("lookup", "+4989123456", "--json")) == {"Ohne Vorwahl"}
    assert cli(*add, "--name", "Mit Vorwahl", "--number", "business:123457").code == 0
    for caller in ("+4989123457", "004989123457", "4989123457", "089123457", "123457"):
        assert _names(cli("lookup", caller, "--json")) == {"Mit Vorwahl"}, caller
    r = cli("config", "set", "area_code", "Muenchen")
    assert r.code == 2 and "area_code" in r.err and "digits" in r.err
    assert cli("config", "set", "area_code", "").code == 0  # reset: local numbers lose it
    assert _names(cli("lookup", "+4989123456", "--json")) == set()


def test_foreign_local_number_is_no_caller_id(cli):
    """A Norwegian mobile written without +47 in a German-region database: no E.164, so a
    German caller with the same digits is not shown as the Norwegian contact."""
    cli("users", "add", "anna@contoso.de")
    r = cli("phonebook", "add", "--user", "anna@contoso.de", "--name", "Ola Nordmann",
            "--number", "mobile:91551000")
    assert r.code == 0, r.err
    shown = json.loads(cli("phonebook", "show", "--json").out)
    assert shown[0]["entries"][0]["numbers"][0]["e164"] is None
    assert _names(cli("lookup", "+4991551000", "--json")) == set()


def test_guessed_e164_of_an_older_version_is_never_returned(cli, database):
    cli("users", "add", "anna@contoso.de")
    base = ("phonebook", "add", "--user", "anna@contoso.de")
    assert cli(*base, "--name", "Ola Nordmann", "--number", "mobile:91551000").code == 0
    assert cli(*base, "--name", "Echt", "--number", "business:0911 551000").code == 0
    with database.session() as s:  # what the old normaliser stored for "91551000"
        s.execute(update(Number).where(Number.number == "91551000").values(e164="+4991551000"))
    assert _names(cli("lookup", "+49 911 551000", "--json")) == {"Echt"}
