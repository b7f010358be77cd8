"""configure: the installer's questions on a real (pseudo-)terminal, and ``--batch`` on stdin.

The interactive runs go through a pseudo-terminal (tests/terminal.py, pexpect) so the program
has a controlling terminal, as an admin's ssh session does: getpass switches echo off there,
and everything the terminal shows ends up in the transcript we check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from terminal import Terminal

from ucware_contactsync import settings, settings_store
from ucware_contactsync.db import Database

TENANT = "2f1c7a9e-5b3d-4e8f-9a0b-1c2d3e4f5a6b"
CLIENT = "8d7c6b5a-4f3e-4d2c-8b1a-0f9e8d7c6b5a"
SECRET = "Zq8~xK3.secret-VALUE_42"
SECRET2 = "N3w~different.secret_99"
PASSWORD = "Ex-Pass-w0rd!x7"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTACTSYNC_SYSLOG"] = "0"
    env.pop("CONTACTSYNC_DB_URL", None)
    env["TERM"] = "dumb"
    return env


def _configure(url: str, *extra: str) -> Terminal:
    # -vvv: debug logging of everything, the libraries included; a secret must not leak there
    return Terminal([sys.executable, "-m", "ucware_contactsync", "-vvv", "--db", url,
                     "configure", *extra], _env())


def _stored(url: str) -> dict[str, str]:
    database = Database(url)
    try:
        with database.session() as s:
            return settings_store.read_raw(s)
    finally:
        database.dispose()


@pytest.fixture
def fresh_url(tmp_path: Path) -> str:
    """A database file that does not exist yet: configure must run db init itself."""
    return f"sqlite:///{tmp_path / 'fresh' / 'contactsync.db'}"


def test_office365_answers_are_checked_and_the_secret_is_never_echoed(fresh_url: str) -> None:
    t = _configure(fresh_url)
    t.expect("office365.com)? [Y/n]")
    t.send("")
    t.expect("Directory (tenant) ID: ")
    t.send("not a tenant")
    t.expect("Invalid: must be the Directory (tenant) ID")
    t.expect("Directory (tenant) ID: ")
    t.send(TENANT)
    t.expect("Application (client) ID: ")
    t.send("12345")
    t.expect("Invalid: must be the Application (client) ID")
    t.expect("Application (client) ID: ")
    t.send(CLIENT)
    t.expect("input not shown): ")  # getpass has switched echo off before its prompt
    t.send("")
    t.expect("An answer is required.")
    t.expect("input not shown): ")
    t.send(SECRET)
    t.expect("directory (needs User.Read.All; Enter: none): ")
    t.send("Firma")
    t.expect("Next: 'ucware-contactsync check'")
    code = t.wait()
    assert code == 0, t.text
    # The other answers were echoed (so the transcript does show typed text) ...
    assert TENANT in t.text and CLIENT in t.text
    # ... the secret was not, nor printed or logged at -vvv.
    assert SECRET not in t.text
    assert settings.MASK + " (new)" in t.text
    stored = _stored(fresh_url)
    assert stored["office365"] == "true"
    assert stored["tenant_id"] == TENANT
    assert stored["client_id"] == CLIENT
    assert stored["client_secret"] == SECRET
    assert stored["directory_phonebook"] == "Firma"


def test_reconfigure_keeps_answers_on_enter_and_the_secret_on_empty_input(
        fresh_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ucware_contactsync", "--db", fresh_url, "configure", "--batch"],
        input=f"tenant_id={TENANT}\nclient_id={CLIENT}\nclient_secret={SECRET}\n",
        text=True, env=_env(), check=True, capture_output=True)
    t = _configure(fresh_url)
    t.expect("[Y/n]")
    t.send("yes")
    t.expect(f"Directory (tenant) ID [{TENANT}]: ")
    t.send("")
    t.expect(f"Application (client) ID [{CLIENT}]: ")
    t.send("")
    t.expect("[Enter keeps the stored one]: ")
    t.send("")
    t.expect("Enter: none): ")
    t.send("")
    code = t.wait()
    assert code == 0, t.text
    assert f"client_secret  {settings.MASK} (unchanged)" in t.text
    assert SECRET not in t.text
    stored = _stored(fresh_url)
    assert (stored["tenant_id"], stored["client_id"], stored["client_secret"]) == (
        TENANT, CLIENT, SECRET)

    t = _configure(fresh_url)  # and a new secret replaces it
    t.expect("[Y/n]")
    t.send("")
    t.expect("ID [")
    t.send("")
    t.expect("ID [")
    t.send("")
    t.expect("[Enter keeps the stored one]: ")
    t.send(SECRET2)
    t.expect("Enter: none): ")
    t.send("")
    assert t.wait() == 0, t.text
    assert SECRET2 not in t.text and SECRET not in t.text
    assert _stored(fresh_url)["client_secret"] == SECRET2


def test_on_premises_exchange_asks_url_account_and_hidden_password(fresh_url: str,
                                                                   tmp_path: Path) -> None:
    from ucware_contactsync.testing.certs import make_certificates

    ca = make_certificates(tmp_path / "company-ca").ca_file  # ca_bundle must hold a real one
    t = _configure(fresh_url)
    t.expect("[Y/n]")
    t.send("maybe")
    t.expect("Please answer yes or no.")
    t.send("n")
    t.expect("EWS URL of the Exchange Server (https://…/EWS/Exchange.asmx, or its host name): ")
    t.send("http://mail.example.com/EWS/Exchange.asmx")
    t.expect("Invalid: must be an https:// URL")
    t.expect("host name): ")
    t.send("mail.example.com")  # the bare host: the EWS path is added
    t.expect("Service account (DOMAIN\\user or user@example.com): ")
    t.send("EXAMPLE\\svc-contactsync")
    t.expect("Password of the service account (input not shown): ")
    t.send(PASSWORD)
    t.expect("(Enter: the system's CAs): ")
    t.send(str(tmp_path / "missing.pem"))
    t.expect("does not exist; give the path of a PEM CA file. Please try again.")
    t.expect("CAs): ")
    t.send(str(ca))
    t.expect("its impersonation right and each mailbox")
    code = t.wait()
    assert code == 0, t.text
    assert PASSWORD not in t.text
    assert "https://mail.example.com/EWS/Exchange.asmx" in t.text  # what was stored, shown
    stored = _stored(fresh_url)
    assert stored["office365"] == "false"
    assert stored["ews_url"] == "https://mail.example.com/EWS/Exchange.asmx"
    assert stored["ews_username"] == "EXAMPLE\\svc-contactsync"
    assert stored["ews_password"] == PASSWORD
    assert stored["ca_bundle"] == str(ca)
    assert "client_secret" not in stored


def test_on_premises_ca_question_is_optional(fresh_url: str) -> None:
    t = _configure(fresh_url)
    t.expect("[Y/n]")
    t.send("n")
    t.expect("host name): ")
    t.send("https://mail.example.com/")
    t.expect("user@example.com): ")
    t.send("svc-contactsync@example.com")
    t.expect("(input not shown): ")
    t.send(PASSWORD)
    t.expect("(Enter: the system's CAs): ")
    t.send("")
    assert t.wait() == 0, t.text
    stored = _stored(fresh_url)
    assert stored["ews_url"] == "https://mail.example.com/EWS/Exchange.asmx"
    assert "ca_bundle" not in stored


def test_ctrl_c_saves_nothing(fresh_url: str) -> None:
    t = _configure(fresh_url)
    t.expect("[Y/n]")
    t.send("")
    t.expect("Directory (tenant) ID: ")
    t.send(TENANT)
    t.expect("Application (client) ID: ")
    t.interrupt()  # Ctrl-C
    assert t.wait() == 130, t.text
    assert "tenant_id" not in _stored(fresh_url)


def test_without_a_terminal_configure_points_to_batch(fresh_url: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ucware_contactsync", "--db", fresh_url, "configure"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_env())
    assert r.returncode == 2
    assert "--batch" in r.stderr


def test_batch_stores_answers_from_stdin(db_url: str) -> None:
    """The form the Debian postinst uses, on every database backend."""
    answers = (f"# debconf answers\noffice365=true\ntenant_id={TENANT}\n\n"
               f"client_id={CLIENT}\nclient_secret={SECRET}\nphonebookname=Outlook\n"
               "directory_phonebook=Firma\n")
    r = subprocess.run(
        [sys.executable, "-m", "ucware_contactsync", "-vvv", "--db", db_url,
         "configure", "--batch"],
        input=answers, capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr
    stored = _stored(db_url)
    assert stored["client_secret"] == SECRET
    assert stored["phonebookname"] == "Outlook"
    assert (stored["tenant_id"], stored["client_id"]) == (TENANT, CLIENT)

    # An empty value keeps what is stored (as an empty debconf secret on reconfigure).
    r = subprocess.run(
        [sys.executable, "-m", "ucware_contactsync", "--db", db_url, "configure", "--batch"],
        input="office365=true\ntenant_id=\nclient_id=\nclient_secret=\n",
        capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert _stored(db_url)["client_secret"] == SECRET
    assert _stored(db_url)["directory_phonebook"] == "Firma"
    # ... except for the directory phonebook, where the empty debconf answer means none
    r = subprocess.run(
        [sys.executable, "-m", "ucware_contactsync", "--db", db_url, "configure", "--batch"],
        input="directory_phonebook=\n", capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert _stored(db_url)["directory_phonebook"] == ""


def test_batch_reports_wrong_lines_without_their_values(fresh_url: str) -> None:
    answers = (f"tenant_id={TENANT}\nclient_id=not-a-guid\n{SECRET}\n"
               f"colour=blue\nclient_secret={SECRET2}\n")
    r = subprocess.run(
        [sys.executable, "-m", "ucware_contactsync", "--db", fresh_url,
         "configure", "--batch"],
        input=answers, capture_output=True, text=True, env=_env())
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "client_id" in out and "Application (client) ID" in out
    assert "line 3: expected key=value" in out
    assert "unknown key 'colour'" in out
    assert SECRET not in out and SECRET2 not in out
    stored = _stored(fresh_url)  # the valid answers are stored all the same
    assert stored["tenant_id"] == TENANT
    assert stored["client_secret"] == SECRET2
    assert "client_id" not in stored
