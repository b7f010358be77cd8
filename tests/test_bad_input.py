"""Bad input gets one line: what is wrong and what to do, exit 2, no traceback and no secret;
"unexpected error" stays for real bugs. Through the command line."""

from __future__ import annotations

import pytest

from ucware_contactsync import db as dbmod


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: the checks here happen before or apart from the database server."""
    url = f"sqlite:///{tmp_path_factory.mktemp('badinput') / 'test.db'}"
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    return url


def one_line(r) -> str:  # type: ignore[no-untyped-def]
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert "unexpected error" not in r.err and "Traceback" not in r.err, r.err
    return lines[0]


# --- database URL: the password never shows, whatever it contains ------------------------------

@pytest.mark.parametrize("url", [
    "mysql+pymysql://cs:Pa55@2024!x@127.0.0.1:1/db",  # an unescaped "@" in the password
    "nonsense:://cs:Pa55@2024!x@host/db",  # unparsable
])
def test_database_url_with_a_bad_password_is_refused_without_echoing_it(cli, url) -> None:
    r = cli("--db", url, "users", "list", db=False)
    assert r.code == 2
    line = one_line(r)
    assert "2024!x" not in line and "Pa55" not in line, line


def test_unreachable_database_hides_an_escaped_password(cli) -> None:
    r = cli("--db", "postgresql+psycopg://cs:Pa55%402024!x@127.0.0.1:1/db", "users", "list",
            "-vv", db=False)
    assert r.code != 0
    assert "Pa55" not in r.err and "2024!x" not in r.err, r.err


def test_empty_db_is_an_error_not_the_default_database(cli) -> None:
    r = cli("--db", "", "users", "list", db=False)
    assert r.code == 2 and "--db" in one_line(r)


# --- check: a wrong secret or an unreachable token endpoint is one line, not a bug ---------------

def _tenant(api: str):  # type: ignore[no-untyped-def]
    from ucware_contactsync.testing import generate_tenant

    roles = ("Contacts.Read",) if api == "graph" else ("full_access_as_app",)
    return generate_tenant(seed=3, mailboxes=1, contacts_per_mailbox=2, subfolders=0,
                           distribution_lists=0, roles=roles)


@pytest.mark.parametrize("api", ["graph", "ews", "auto"])
def test_check_with_a_wrong_secret_or_the_token_endpoint_down(office_factory, cli, api) -> None:
    office = office_factory(_tenant(api), api=api)
    assert cli("config", "set", "client_secret", "Wrong+Secret/123=").code == 0
    r = cli("check")
    assert r.code == 2, r.out + r.err
    assert "AADSTS7000215" in r.out + r.err and "client_secret" in r.out + r.err
    assert "unexpected error" not in r.err and "Traceback" not in r.err, r.err
    assert cli("config", "set", "client_secret", office.app.secret).code == 0
    office.fx.faults.token_endpoint_down()
    r = cli("check")
    assert r.code == 1, r.out + r.err  # temporary: like sync, exit 1
    assert "unexpected error" not in r.err and "Traceback" not in r.err, r.err
    assert "token" in r.out + r.err


# --- the command line: one line naming the argument and the limit -----------------------------

@pytest.mark.parametrize("argv", [
    ("users", "add", "b\udcffr@x.de"),  # what Python makes of $'b\xffr@x.de'
    ("import-csv", "x.csv", "--user", "a@b.de", "--phonebook", "K\udcfcnden"),
    ("users", "add", "a" * 390 + "@x.de"),
    ("groups", "add", "G" * 300),
    ("users", "add", "x@y.de", "--name", "N" * 300),
    ("phonebook", "add", "--user", "x@y.de", "--phonebook", "T" * 300, "--name", "A"),
    ("phonebook", "add", "--user", "x@y.de", "--phonebook", "  \t ", "--name", "A"),
])
def test_bad_arguments_get_one_line_naming_the_argument(cli, argv) -> None:
    r = cli(*argv)
    line = one_line(r)
    assert "\udcff" not in line and "\udcfc" not in line
    named = {"b\udcffr@x.de": "EMAIL", "K\udcfcnden": "--phonebook"}
    for arg, label in named.items():
        if arg in argv:
            assert label in line and "UTF-8" in line, line


def test_non_utf8_db_argument(cli) -> None:
    line = one_line(cli("--db", "sqlite:////tmp/b\udcffr.db", "users", "list", db=False))
    assert "--db" in line and "UTF-8" in line


def test_a_blank_phonebook_fails_the_same_with_and_without_dry_run(cli, tmp_path) -> None:
    assert cli("users", "add", "anna@contoso.de").code == 0
    f = tmp_path / "k.csv"
    f.write_text("display_name,mobile\nAnna,0171 1234567\n", encoding="utf-8")
    for extra in ((), ("--dry-run",)):
        r = cli("import-csv", str(f), "--user", "anna@contoso.de", "--phonebook", "   ", *extra)
        assert "--phonebook is empty" in one_line(r)


def test_sqlite_path_that_cannot_exist(cli) -> None:
    line = one_line(cli("--db", "sqlite:////dev/null/x.db", "users", "list", db=False))
    assert "/dev/null/x.db" in line and "directory" in line


def test_control_characters_in_titles_are_dropped(cli, tmp_path) -> None:
    import json

    assert cli("users", "add", "anna@contoso.de").code == 0
    r = cli("config", "set", "phonebookname", "Pri\x1b[31mvat\x07")
    assert r.code == 0 and "\x1b" not in r.out + r.err
    assert cli("config", "get", "phonebookname").out.strip() == "Pri[31mvat"
    f = tmp_path / "k.csv"
    f.write_text("owner,phonebook,display_name,mobile\n"
                 "anna@contoso.de,\"Kun\x9b31mden\",Anna,0171 1234567\n",
                 encoding="utf-8")
    r = cli("import-csv", str(f))
    assert r.code == 0, r.err
    assert "\x9b" not in r.out + r.err
    books = json.loads(cli("phonebook", "show", "--json").out)
    assert [b["name"] for b in books] == ["Kun31mden"]


def test_output_to_a_terminal_that_is_not_utf8(tmp_path) -> None:
    """A terminal whose encoding is ASCII (LANG=C on an old system): a real process."""
    import subprocess
    import sys

    db = tmp_path / "ascii.db"
    env = {"PYTHONIOENCODING": "ascii", "CONTACTSYNC_SYSLOG": "0", "PATH": "/usr/bin:/bin",
           "CONTACTSYNC_STATE_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "ucware_contactsync", "--db", f"sqlite:///{db}"]
    subprocess.run([*run, "db", "init"], env=env, capture_output=True, check=True)
    r = subprocess.run([*run, "users", "add", "joerg@x.de", "--name", "Jörg Weiß"], env=env,
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*run, "users", "list"], env=env, capture_output=True)
    assert r.returncode == 0 and b"unexpected" not in r.stderr, r.stderr
    assert b"J\\xf6rg" in r.stdout, r.stdout


# --- settings: refused with the fix ------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "words"), [
    ("graph_url", "https://user:pw@graph.microsoft.com", "user@"),
    ("login_url", "https://login.microsoftonline.com/#frag", "fragment"),
    ("ews_url", "https://mail.contoso.de/EWS/Exchange.asmx?x=1", "query"),
    ("graph_url", "https://graph.microsoft.com:99999", "port"),
    ("graph_url", "https://graph.microsoft.com:0", "port"),
    ("login_url", "https://login.microsoftonline.com:abc", "port"),
    ("max_workers", "²", "whole number"),
    ("max_workers", "٣", "whole number"),
])
def test_bad_setting_values_are_refused_with_the_fix(cli, key, value, words) -> None:
    line = one_line(cli("config", "set", key, value))
    assert words in line and f"config set {key}" in line, line
    assert "pw" not in line.replace(f"{key}", "")


def test_ca_bundle_must_hold_a_certificate(cli, tmp_path) -> None:
    empty = tmp_path / "ca.pem"
    empty.write_text("not a certificate\n")
    line = one_line(cli("config", "set", "ca_bundle", str(empty)))
    assert "no PEM certificate" in line, line
    from ucware_contactsync.testing.certs import make_certificates

    good = make_certificates(tmp_path / "certs").ca_file
    assert cli("config", "set", "ca_bundle", str(good)).code == 0


def test_a_file_name_that_is_not_utf8_gets_one_line(cli, tmp_path) -> None:
    """The name is stored in the run history and shown in messages: it must be text."""
    import os

    name = os.fsdecode(b"kunden-\xfc.csv")  # a Latin-1 file name on a UTF-8 system
    (tmp_path / name).write_text("display_name,mobile\nAnna,0171 1234567\n", encoding="utf-8")
    r = cli("import-csv", str(tmp_path / name), "--user", "anna@contoso.de", "--phonebook", "K")
    line = one_line(r)
    assert "FILE" in line and "UTF-8" in line, line
