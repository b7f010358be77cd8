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
