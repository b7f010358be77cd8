"""The command line of docs/admin-guide.md: admin steps, config, JSON, lookup and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SECRET = "s3cr3t~Value_With.Chars"


def test_seed_admin_steps_and_empty_show(cli):
    assert cli("users", "add", "Anna.Berg@Contoso.de", "--name", "Anna Berg").code == 0
    assert cli("groups", "add", "Kontakte").code == 0
    assert cli("groups", "set", "Kontakte", "ews_synccontacts", "true").code == 0
    r = cli("groups", "add-member", "Kontakte", "anna.berg@contoso.de")
    assert r.code == 0, r.err
    r = cli("phonebook", "show", "--json")
    assert r.code == 0 and json.loads(r.out) == []


def test_duplicate_user_is_usage_error(cli):
    assert cli("users", "add", "a@x.de").code == 0
    r = cli("users", "add", "A@X.DE")
    assert r.code == 2 and "exists already" in r.err and "Traceback" not in r.err


def test_config_set_get_list_masks_secret(cli):
    assert cli("config", "set", "client_secret", SECRET).code == 0
    assert cli("config", "set", "tenant_id", "11111111-2222-3333-4444-555555555555").code == 0
    listing = cli("config", "list")
    assert listing.code == 0
    assert SECRET not in listing.out + listing.err
    assert "client_secret" in listing.out and "********" in listing.out
    assert re.search(r"^phonebookname +Privat +\(default\)$", listing.out, re.M)
    got = cli("config", "get", "client_secret")
    assert SECRET not in got.out and got.out.strip() == "********"
    assert cli("config", "get", "tenant_id").out.strip() == "11111111-2222-3333-4444-555555555555"
    assert cli("config", "set", "phonebookname", "Outlook").code == 0
    assert cli("config", "get", "phonebookname").out.strip() == "Outlook"
    assert cli("config", "set", "phonebookname", "").code == 0
    assert cli("config", "get", "phonebookname").out.strip() == "Privat"


@pytest.mark.parametrize(("key", "value", "words"), [
    ("tenant_id", "not a tenant", "Directory (tenant) ID"),
    ("client_id", "123", "Application (client) ID"),
    ("api", "soap", "auto, graph or ews"),
    ("office365", "vielleicht", "true or false"),
    ("login_url", "http://login.example", "https://"),
    ("default_region", "XX", "region code"),
    ("max_workers", "0", "1 to 32"),
    ("ca_bundle", "/nonexistent/ca.pem", "does not exist"),
    ("no_such_key", "1", "unknown key"),
])
def test_invalid_key_value_is_exit_2_naming_key(cli, key, value, words):
    r = cli("config", "set", key, value)
    assert r.code == 2
    assert key in r.err and words in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_invalid_stored_value_fails_loading_with_fix(cli, database):
    from ucware_contactsync.model import KeyValue

    with database.session() as s:
        s.add(KeyValue(namespace="contactsync", key="default_region", value="Deutschland"))
    r = cli("lookup", "089 123456")
    assert r.code == 2
    assert "default_region" in r.err and "config set default_region" in r.err


def test_manual_entry_show_json_and_lookup(cli):
    cli("users", "add", "anna@contoso.de")
    r = cli("phonebook", "add", "--user", "ANNA@contoso.de", "--name", "Bäckerei Schmidt",
            "--company", "Schmidt GmbH", "--number", "business:+49 89 12345-0",
            "--number", "mobile:0171 / 123 45 67")
    assert r.code == 0, r.err
    books = json.loads(cli("phonebook", "show", "--json").out)
    assert books == [{
        "owner": "anna@contoso.de", "name": "Privat", "source": "manual",
        "entries": [{
            "display_name": "Bäckerei Schmidt", "given_name": "", "surname": "",
            "company": "Schmidt GmbH", "department": "", "job_title": "", "emails": [],
            "numbers": [
                {"type": "business", "number": "+49 89 12345-0", "e164": "+4989123450"},
                {"type": "mobile", "number": "0171 / 123 45 67", "e164": "+491711234567"},
            ],
            "source_id": None,
        }],
    }]
    for caller in ("+491711234567", "0171-1234567", "0049 171 1234567", "(0171) 1234567"):
        r = cli("lookup", caller, "--json")
        assert r.code == 0, caller
        hit = json.loads(r.out)
        assert hit == [{"owner": "anna@contoso.de", "phonebook": "Privat",
                        "display_name": "Bäckerei Schmidt", "type": "mobile",
                        "number": "0171 / 123 45 67", "e164": "+491711234567"}]
    # an extension of the company finds the switchboard entry
    hit = json.loads(cli("lookup", "089 12345 42", "--json").out)
    assert hit[0]["display_name"] == "Bäckerei Schmidt" and hit[0]["type"] == "business"
    r = cli("lookup", "+49 30 999999", "--json")
    assert r.code == 1 and json.loads(r.out) == []


def test_phonebook_add_bad_number_type(cli):
    cli("users", "add", "anna@contoso.de")
    r = cli("phonebook", "add", "--user", "anna@contoso.de", "--name", "X", "--number", "fax:1")
    assert r.code == 2 and "unknown number type 'fax'" in r.err


def test_unknown_user_is_clear(cli):
    r = cli("phonebook", "show", "--user", "nobody@x.de")
    assert r.code == 2 and "users add nobody@x.de" in r.err


def test_unknown_subcommand_one_line(cli):
    r = cli("frobnicate")
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1 and "invalid choice" in r.err


def test_malformed_db_url(cli):
    r = cli("--db", "nonsense:://x", "users", "list", db=False)
    assert r.code == 2 and "malformed database URL" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_unreachable_database_one_line_no_password(cli):
    r = cli("--db", "mysql+pymysql://root:hunter22@127.0.0.1:1/test", "users", "list", db=False)
    assert r.code == 2 and "cannot connect to the database" in r.err
    assert "hunter22" not in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_traceback_only_with_vv(cli):
    r = cli("--db", "postgresql+psycopg://u@127.0.0.1:1/x", "-vv", "users", "list", db=False)
    assert r.code == 2 and "Traceback" in r.err


def test_missing_schema_says_db_init(cli, tmp_path):
    r = cli("--db", f"sqlite:///{tmp_path / 'new.db'}", "users", "list", db=False)
    assert r.code == 2 and "db init" in r.err


def test_global_options_after_subcommand(cli, db_url):
    r = cli("users", "add", "x@y.de", "--db", db_url, "-v", db=False)
    assert r.code == 0, r.err


def test_same_program_three_ways(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    env_cmds = [
        [sys.executable, str(ROOT / "runner.py")],
        [sys.executable, "-m", "ucware_contactsync"],
    ]
    for cmd in env_cmds:
        r = subprocess.run([*cmd, "--db", url, "db", "init"], capture_output=True, text=True,
                           cwd=ROOT)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([*cmd, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert "import-csv" in r.stdout and "lookup" in r.stdout


def test_journal_priorities_when_stderr_is_the_journal(tmp_path):
    """Under systemd (JOURNAL_STREAM names stderr) lines carry <prio> prefixes, no syslog copy."""
    import os

    url = f"sqlite:///{tmp_path / 'j.db'}"
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run([sys.executable, "-m", "ucware_contactsync", "--db", url, "db", "init"],
                       stderr=err, env=env, cwd=ROOT, check=True)
        r = subprocess.run([sys.executable, "-m", "ucware_contactsync", "--db", url, "config",
                            "set", "api", "soap"], stderr=err, env=env, cwd=ROOT)
    assert r.returncode == 2
    lines = err_path.read_text().splitlines()
    assert lines[0].startswith("<5>schema of") and lines[1].startswith("<3>error: invalid value")
