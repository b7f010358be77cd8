"""Shared fixtures: one fresh schema per backend and test session, emptied between tests.

Backends come from $CONTACTSYNC_TEST_DATABASES (default ``sqlite,mariadb,postgresql``).
A server that cannot be reached is skipped, unless $CONTACTSYNC_REQUIRE_ALL_DB=1 (CI sets
it): then the test errors, so a missing backend can never pass silently.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Generator, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import create_engine, text

from ucware_contactsync import db as dbmod
from ucware_contactsync.cli import main
from ucware_contactsync.db import Database
from ucware_contactsync.model import Base
from ucware_contactsync.settings import SECRET_KEYS
from ucware_contactsync.testing.tenant import ISSUED_SECRETS

# Fuzz tests (tests/test_fuzz_*.py): the same examples on every run and no .hypothesis
# directory in the repository (CI runs with -p no:cacheprovider and a read-only checkout).
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                                     print_blob=False)
# Hypothesis' caches (unicode tables; literals of our modules, read while collecting) go to
# the temp dir as well.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"contactsync-hypothesis-{os.getuid()}")
# HYPOTHESIS_PROFILE=explore: new random examples on each run, for hunting locally.
hypothesis_settings.register_profile("explore", database=None, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "prints_secret: the test shows an app secret on purpose "
                                       "(opts out of the secret scan after every test)")


# -- no secret in any output: checked after every test ---------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep what pytest captured (stdout, stderr, log) for the secret scan below."""
    report = yield
    item.stash.setdefault(_CAPTURED, []).extend(
        (report.capstdout, report.capstderr, report.caplog))
    return report


_CLI_OUTPUTS: list[str] = []  # stdout + stderr of every `cli` call of the running test
_CAPTURED = pytest.StashKey[list[str]]()  # what pytest captured for the test (per phase)
_CLI_SECRETS: set[str] = set()  # values given to `config set client_secret|ews_password`


@pytest.fixture(autouse=True)
def _no_secret_in_output(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose captured output, logs or CLI output contain an app secret of a fake
    tenant or a secret set with `config set` (opt out: @pytest.mark.prints_secret)."""
    read: list[str] = []  # what the test itself took out of capsys / capfd
    for name in ("capsys", "capfd"):
        if name in request.fixturenames:
            cap = request.getfixturevalue(name)
            original = cap.readouterr

            def readouterr(original=original):  # type: ignore[no-untyped-def]
                got = original()
                read.extend((got.out, got.err))
                return got

            cap.readouterr = readouterr
    caplog = request.getfixturevalue("caplog") if "caplog" in request.fixturenames else None
    _CLI_OUTPUTS.clear()
    yield
    if request.node.get_closest_marker("prints_secret"):
        return
    texts = [*read, *_CLI_OUTPUTS]
    # What pytest captured in setup and call (kept by pytest_runtest_makereport above).
    texts += request.node.stash.get(_CAPTURED, [])
    for rec in caplog.records if caplog else ():
        texts += [rec.getMessage(), rec.exc_text or ""]
    secrets = {s for s in ISSUED_SECRETS | _CLI_SECRETS if len(s) >= 6}
    leaked = sorted({s for s in secrets for t in texts if s in t})
    if leaked:
        pytest.fail(f"a secret appears in the test's output or logs: {leaked[0][:3]}...",
                    pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Lock files and default databases of tests never land in an installed package's
    /var/lib/ucware-contactsync (tests run as root there)."""
    old = os.environ.get("CONTACTSYNC_STATE_DIR")
    os.environ["CONTACTSYNC_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        os.environ.pop("CONTACTSYNC_STATE_DIR", None)
    else:
        os.environ["CONTACTSYNC_STATE_DIR"] = old


SERVERS = {
    "mariadb": os.environ.get("CONTACTSYNC_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306"),
    "postgresql": os.environ.get("CONTACTSYNC_TEST_POSTGRESQL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432"),
}
BACKENDS = [b.strip() for b in os.environ.get(
    "CONTACTSYNC_TEST_DATABASES", "sqlite,mariadb,postgresql").split(",") if b.strip()]
REQUIRE_ALL = os.environ.get("CONTACTSYNC_REQUIRE_ALL_DB") == "1"


def _create_server_db(backend: str) -> tuple[str, str]:
    """(url of a new empty database, url of the server's maintenance db)."""
    name = f"cstest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    base = SERVERS[backend]
    admin_url = f"{base}/test" if backend == "mariadb" else f"{base}/postgres"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if backend == "mariadb":
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        else:
            conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\''))
    engine.dispose()
    return f"{base}/{name}", admin_url


def _drop_server_db(backend: str, admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if backend == "mariadb":
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        else:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    """A database with the newest schema, made by ``db init``'s own code path (Alembic)."""
    backend = request.param
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        admin = ""
    else:
        try:
            url, admin = _create_server_db(backend)
        except Exception as exc:  # noqa: BLE001 - any connect failure means "not there"
            if REQUIRE_ALL:
                pytest.fail(f"{backend} is required but not reachable: {exc}")
            pytest.skip(f"{backend} not reachable: {exc}")
    engine = dbmod.make_engine(url)
    dbmod.upgrade(engine)
    engine.dispose()
    yield url
    if backend != "sqlite":
        _drop_server_db(backend, admin, url)


def _empty(url: str) -> None:
    engine = dbmod.make_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def db_url(backend_url: str) -> str:
    _empty(backend_url)
    return backend_url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    d = Database(db_url)
    yield d
    d.dispose()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the command line in-process against the test database."""
    monkeypatch.setenv("CONTACTSYNC_SYSLOG", "0")

    def run(*argv: str, db: bool = True) -> Result:
        out, err = io.StringIO(), io.StringIO()
        args = ["--db", db_url, *argv] if db else list(argv)
        if argv[:2] == ("config", "set") and len(argv) > 3 and argv[2] in SECRET_KEYS:
            _CLI_SECRETS.add(argv[3])
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:
                code = int(exc.code or 0)
        _CLI_OUTPUTS.append(out.getvalue() + err.getvalue())
        return Result(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def admin_setup(cli):  # type: ignore[no-untyped-def]
    """The seed's admin steps for the given users; returns the cli runner."""

    def setup(*emails: str, group: str = "Kontakte") -> None:
        assert cli("groups", "add", group).code == 0
        assert cli("groups", "set", group, "ews_synccontacts", "true").code == 0
        for e in emails:
            assert cli("users", "add", e).code == 0
            assert cli("groups", "add-member", group, e).code == 0

    return setup


ROOT = Path(__file__).resolve().parent.parent


# -- the fake Exchange Online, configured into the test database ------------------------------

@dataclass
class Office:
    """A running fake Exchange Online with its tenant, wired into the test database."""

    fx: object
    tenant: object
    app: object
    cli: object

    def mailbox(self, email: str):  # type: ignore[no-untyped-def]
        return self.tenant.mailbox(email)  # type: ignore[attr-defined]

    def sync(self, *argv: str) -> Result:
        return self.cli("sync", *argv)  # type: ignore[operator]

    def books(self, user: str | None = None) -> list[dict]:
        import json

        r = self.cli("phonebook", "show", "--json", *(["--user", user] if user else []))  # type: ignore[operator]
        assert r.code == 0, r.err
        return json.loads(r.out)

    def book(self, user: str) -> dict:
        books = [b for b in self.books(user) if b["name"] == "Privat"]
        assert len(books) == 1, books
        return books[0]


def make_office(cli, admin_setup, tenant, api: str = "auto",  # type: ignore[no-untyped-def]
                on_premises: bool = False):
    """``on_premises``: an Exchange Server with NTLM and a service account (office365=false)."""
    from ucware_contactsync.testing import FakeExchange

    fx = FakeExchange(tenant, on_premises=on_premises).start()
    app = next(iter(tenant.apps.values()))
    for key, value in {**fx.settings(), "api": api}.items():
        r = cli("config", "set", key, value)
        assert r.code == 0, r.err
    admin_setup(*sorted(tenant.mailboxes))
    return Office(fx, tenant, app, cli)


@pytest.fixture
def office_factory(cli, admin_setup):  # type: ignore[no-untyped-def]
    started = []

    def factory(tenant, api: str = "auto", on_premises: bool = False  # type: ignore[no-untyped-def]
                ) -> Office:
        office = make_office(cli, admin_setup, tenant, api, on_premises)
        started.append(office)
        return office

    yield factory
    for office in started:
        office.fx.stop()  # type: ignore[attr-defined]
