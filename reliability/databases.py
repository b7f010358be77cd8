"""A fresh, migrated database per case: SQLite in a scratch directory, or a new database on
a MariaDB / PostgreSQL server, dropped afterwards (as tests/conftest.py does for the suite)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ucware_contactsync import db as dbmod

SERVERS = {
    "mariadb": os.environ.get("CONTACTSYNC_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306"),
    "postgresql": os.environ.get("CONTACTSYNC_TEST_POSTGRESQL",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432"),
}


def backend_of(url: str) -> str:
    """sqlite | mariadb | postgresql, from a backend name or a URL."""
    if url in ("sqlite", "mariadb", "postgresql"):
        return url
    driver = make_url(url).get_backend_name()
    return {"mysql": "mariadb", "mariadb": "mariadb", "postgresql": "postgresql",
            "sqlite": "sqlite"}.get(driver, driver)


def server_of(spec: str) -> str:
    """The server URL without a database: the default for a backend name, else ``spec``
    with any database part removed."""
    if spec in SERVERS:
        return SERVERS[spec]
    url = make_url(spec)
    return url.set(database=None).render_as_string(hide_password=False).rstrip("/")


@contextmanager
def fresh_database(spec: str, scratch: Path) -> Iterator[str]:
    """The URL of a new database with the current schema (``db init``'s code path)."""
    backend = backend_of(spec)
    if backend == "sqlite":
        url = f"sqlite:///{scratch / 'case.db'}"
        admin = ""
    else:
        url, admin = _create(backend, server_of(spec))
    try:
        engine = dbmod.make_engine(url)
        try:
            dbmod.upgrade(engine)
        finally:
            engine.dispose()
        yield url
    finally:
        if backend != "sqlite":
            _drop(backend, admin, url)


def _create(backend: str, base: str) -> tuple[str, str]:
    name = f"csfault_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = base if backend == "mariadb" else f"{base}/postgres"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "mariadb":
                conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 "
                                  "COLLATE utf8mb4_bin"))
            else:
                conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8'"))
    finally:
        engine.dispose()
    return f"{base}/{name}", admin


def _drop(backend: str, admin: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if backend == "mariadb":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            else:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
