"""Security: no secret or token in any output, secrets masked, state files private, TLS
verified (and trusted only through ca_bundle), XML from the server parsed without entities.

Every test here is about the program, not the database: they run on SQLite only (this module
overrides `backend_url`). The check that no app secret appears in the output of ANY test of
the suite is the autouse fixture `_no_secret_in_output` in tests/conftest.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import stat
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from exchangelib.util import to_xml

from ucware_contactsync import db as dbmod
from ucware_contactsync.cli import main
from ucware_contactsync.db import Database
from ucware_contactsync.settings import MASK, Settings
from ucware_contactsync.sources.auth import TokenProvider, scope_for
from ucware_contactsync.sources.base import HINT_TLS, SourceError
from ucware_contactsync.sync.lock import RunLock, lock_path
from ucware_contactsync.testing import FakeExchange, generate_tenant
from ucware_contactsync.testing.server import with_entities

ROLES = {"ews": ("full_access_as_app",), "graph": ("Contacts.Read",)}
TRUST_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only: nothing here depends on the database server."""
    url = f"sqlite:///{tmp_path_factory.mktemp('security') / 'test.db'}"
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["ews", "graph"])
def api(request: pytest.FixtureRequest) -> str:
    return request.param


def tenant_for(api: str, contacts: int = 6):  # type: ignore[no-untyped-def]
    return generate_tenant(seed=7, mailboxes=2, contacts_per_mailbox=contacts, subfolders=0,
                           distribution_lists=0, roles=ROLES[api])


def bearer_tokens(fx) -> set[str]:  # type: ignore[no-untyped-def]
    auth = (r.headers.get("Authorization", "") for r in fx.requests if r.api in ("ews", "graph"))
    return {a.split(" ", 1)[1] for a in auth if a.lower().startswith("bearer ")}


# --- secrets and tokens in output ----------------------------------------------------------------

@pytest.fixture
def root_logging() -> Iterator[None]:
    """-vvv turns the root logger to DEBUG in this process; later tests must not inherit it
    (their captured logs would hold library debug output with secrets nobody registered)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_debug_output_holds_neither_the_secret_nor_a_bearer_token(office_factory, cli, api,
                                                                   root_logging) -> None:
    tenant = tenant_for(api)
    office = office_factory(tenant)
    office.fx.faults.fail_mailbox(sorted(tenant.mailboxes)[0], "denied")  # an error path too
    r = office.sync("-vvv")  # -vv (our debug, tracebacks) plus the libraries' debug logging
    assert r.code == 1, r.err
    tokens = bearer_tokens(office.fx)
    assert tokens, "the run sent no bearer token: nothing was checked"
    text = r.out + r.err
    # The libraries did log (requests_oauthlib and urllib3 always; exchangelib for EWS).
    assert "requests_oauthlib" in text and "urllib3" in text, text[:2000]
    assert api == "graph" or "exchangelib" in text
    assert office.app.secret not in text
    leaked = [t for t in tokens if t in text or t[-40:] in text]
    assert not leaked, "a bearer token is in the -vvv output"
    # A wrong secret, refused by the token endpoint: neither secret in the error or its trace.
    wrong = f"wrong~{uuid.uuid4().hex}"
    assert cli("config", "set", "client_secret", wrong).code == 0
    r = office.sync("-vvv")
    assert r.code == 2 and "AADSTS7000215" in r.err, r.err
    assert "Traceback" in r.err  # -vv shows the exception with its traceback: checked too
    assert wrong not in r.out + r.err and office.app.secret not in r.out + r.err


def test_config_masks_secrets(cli) -> None:
    secret, password = f"S3cr3t~{uuid.uuid4().hex}", f"Pa55~{uuid.uuid4().hex}"
    for key, value in (("client_secret", secret), ("ews_password", password)):
        r = cli("config", "set", key, value)
        assert r.code == 0 and MASK in r.err, r.err
        got = cli("config", "get", key)
        assert got.code == 0 and got.out.strip() == MASK
    listing = cli("config", "list")
    assert listing.code == 0
    shown = {line.split()[0]: line for line in listing.out.splitlines()}
    assert MASK in shown["client_secret"] and MASK in shown["ews_password"]
    assert repr(Settings(client_secret=secret, ews_password=password)).count(MASK) == 2
    # The autouse scan fails this test if either value shows up anywhere.


# --- files are private, whatever the umask ------------------------------------------------------

def _run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def assert_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o077 == 0, f"{path.name} has mode {oct(mode)}"


def test_database_lock_and_state_files_are_readable_by_their_owner_only(
        umask: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTSYNC_SYSLOG", "0")
    monkeypatch.delenv("CONTACTSYNC_DB_URL", raising=False)
    monkeypatch.setattr(dbmod, "URL_FILE", tmp_path / "no-such-url-file")
    monkeypatch.setenv("CONTACTSYNC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CONTACTSYNC_LOCK_DIR", str(tmp_path / "locks"))
    # The default database (no --db): created in the state directory.
    code, out = _run("db", "init")
    assert code == 0, out
    default = tmp_path / "state" / "contactsync.db"
    assert_private(default)
    # A database given with --db, and its WAL files while a connection writes.
    url = f"sqlite:///{tmp_path / 'data' / 'given.db'}"
    code, out = _run("--db", url, "db", "init")
    assert code == 0, out
    database = Database(url)
    try:
        with database.session() as s:
            from ucware_contactsync import settings_store

            settings_store.set_value(s, "phonebookname", "Kontakte")
        files = sorted((tmp_path / "data").iterdir())
        assert {f.name for f in files} >= {"given.db", "given.db-wal", "given.db-shm"}, files
        for f in files:
            assert_private(f)
    finally:
        database.dispose()
    # The run lock, taken by import-csv like by a sync.
    assert _run("--db", url, "users", "add", "anna@contoso.de")[0] == 0
    csv = tmp_path / "k.csv"
    csv.write_text("display_name,mobile\nMax,0171 1\n", encoding="utf-8")
    code, out = _run("--db", url, "import-csv", str(csv), "--user", "anna@contoso.de",
                     "--phonebook", "Kunden")
    assert code == 0, out
    assert_private(lock_path(url))
    with RunLock(f"sqlite:///{default}") as held:
        assert_private(held.path)


# --- TLS ------------------------------------------------------------------------------------------

@pytest.fixture
def no_trust_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in TRUST_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tls_is_verified_by_default(office_factory, cli, api, no_trust_env) -> None:
    office = office_factory(tenant_for(api), api=api)
    assert cli("config", "set", "ca_bundle", "").code == 0  # back to the default: none
    r = office.sync()
    assert r.code == 2, (r.code, r.err)
    errors = [line for line in r.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TLS error" in errors[0] and HINT_TLS in errors[0], r.err
    assert "Traceback" not in r.err, r.err
    assert office.fx.requests == []  # not even the token request reached the server
    assert office.books() == []


def test_only_ca_bundle_makes_a_private_ca_trusted(office_factory, cli, api,
                                                   no_trust_env) -> None:
    """$REQUESTS_CA_BUNDLE & co. pointing at the fake's CA must not make it trusted: what the
    module trusts is the system's store plus ca_bundle, nothing from its environment."""
    office = office_factory(tenant_for(api), api=api)
    assert cli("config", "set", "ca_bundle", "").code == 0
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        no_trust_env.setenv(name, office.fx.ca_file)
    no_trust_env.setenv("SSL_CERT_DIR", str(Path(office.fx.ca_file).parent))
    r = office.sync()
    assert r.code == 2 and HINT_TLS in r.err, (r.code, r.err)
    assert office.fx.requests == []  # the secret never went to a server we do not trust
    assert cli("config", "set", "ca_bundle", office.fx.ca_file).code == 0
    r = office.sync()
    assert r.code == 0, r.err


def test_ews_and_graph_requests_verify_tls_themselves(api, no_trust_env) -> None:
    """With a token from a trusted endpoint, the API requests still check the server: the
    token provider trusts the fake, the source (no ca_bundle) must not, environment or not."""
    from ucware_contactsync.sources.ews import EwsSource
    from ucware_contactsync.sources.graph import GraphSource

    tenant = tenant_for(api, contacts=2)
    app = next(iter(tenant.apps.values()))
    with FakeExchange(tenant) as fx:
        no_trust_env.setenv("REQUESTS_CA_BUNDLE", fx.ca_file)
        s = Settings(tenant_id=tenant.tenant_id, client_id=app.client_id,
                     client_secret=app.secret, login_url=fx.login_url, graph_url=fx.graph_url,
                     ews_url=fx.ews_url)
        url = fx.ews_url if api == "ews" else fx.graph_url
        tokens = TokenProvider(fx.login_url, tenant.tenant_id, app.client_id, app.secret,
                               scope_for(url), verify=fx.ca_file)
        source = (EwsSource(s, tokens=tokens, max_wait=3) if api == "ews"
                  else GraphSource(s, tokens=tokens, max_wait=3))
        try:
            with pytest.raises(SourceError) as err:
                source.read(sorted(tenant.mailboxes)[0], None)
        finally:
            source.close()
        assert "TLS" in err.value.message and err.value.hint == HINT_TLS, str(err.value)
        assert fx.requests_for("token") and not fx.requests_for(api)


# --- XML entities from the server -----------------------------------------------------------------

def test_exchangelib_parses_server_xml_without_entities(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    marker.write_text(f"XXE-{uuid.uuid4().hex}", encoding="utf-8")
    base = (b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.'
            b'xmlsoap.org/soap/envelope/" xmlns:t="urn:t"><s:Body><t:DisplayName>Anna Berg'
            b"</t:DisplayName></s:Body></s:Envelope>")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for doc in (with_entities(base, "laughs"), with_entities(base, "external", marker.as_uri())):
        tree = to_xml(doc)  # what exchangelib does with every EWS response
        text = "".join(tree.getroot().itertext())
        assert "lol" not in text and marker.read_text() not in text, text[:200]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"parsing grew the process by {grown_mb:.0f} MB"


@pytest.mark.parametrize("kind", ["laughs", "external"])
def test_entity_attack_in_an_ews_answer_is_not_expanded(office_factory, kind: str,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    marker.write_text(f"XXE-{uuid.uuid4().hex}", encoding="utf-8")
    office = office_factory(tenant_for("ews"))
    office.fx.faults.xml_entities(kind, count=100, system_id=marker.as_uri())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = office.sync()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert [q for q in office.fx.requests if q.fault == "xml_entities"], "no attack was served"
    # Ignored (entries keep their other fields) or a clean per-user failure; never a crash.
    assert r.code in (0, 1), (r.code, r.err)
    assert "Traceback" not in r.err and "unexpected error" not in r.err, r.err
    shown = json.dumps(office.books()) + r.out + r.err
    assert "lollol" not in shown and marker.read_text() not in shown
    assert grown_mb < 100, f"the sync grew the process by {grown_mb:.0f} MB"
