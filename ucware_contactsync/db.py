"""Database URL resolution, engines and the Alembic-managed schema."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .errors import DatabaseError, UsageError

ENV_URL = "CONTACTSYNC_DB_URL"
# The Debian package writes the URL here (readable by the service user only).
URL_FILE = Path(os.environ.get("CONTACTSYNC_DB_URL_FILE", "/etc/ucware-contactsync/database.url"))
SYSTEM_STATE_DIR = Path("/var/lib/ucware-contactsync")

MIGRATIONS = Path(__file__).with_name("migrations")


def state_dir() -> Path:
    """/var/lib/ucware-contactsync when installed as a package, else the user's data dir."""
    override = os.environ.get("CONTACTSYNC_STATE_DIR")
    if override:
        return Path(override)
    if SYSTEM_STATE_DIR.is_dir() and os.access(SYSTEM_STATE_DIR, os.W_OK):
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ucware-contactsync"


def default_url() -> str:
    return f"sqlite:///{state_dir() / 'contactsync.db'}"


def resolve_url(cli_url: str | None) -> str:
    """--db, else $CONTACTSYNC_DB_URL, else the package's URL file, else the SQLite default."""
    if cli_url:
        return cli_url
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    try:
        text = URL_FILE.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        # Never fall back silently to another database when the package's one is configured.
        raise DatabaseError(f"cannot read {URL_FILE}: {exc.strerror}",
                            "run as the service user (sudo -u ucservices ...) or give --db URL"
                            ) from None
    return text or default_url()


def redact(url: str | URL) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"malformed database URL {redact(url)!r}",
            "use e.g. sqlite:////var/lib/ucware-contactsync/contactsync.db or "
            "mysql+pymysql://user:pass@host/db or postgresql+psycopg://user@host/db",
        ) from None
    # MariaDB: always utf8mb4 so umlauts and emoji round-trip.
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def make_engine(url: str) -> Engine:
    parsed = parse_url(url)
    kwargs: dict = {"future": True}
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "mysql", "mariadb", "postgresql"):
        raise UsageError(f"unsupported database {backend!r}",
                         "use sqlite://, mysql+pymysql:// (MariaDB) or postgresql+psycopg://")
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        if backend in ("mysql", "mariadb", "postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError:
        raise UsageError(
            f"unsupported database URL scheme {parsed.drivername!r}",
            "use sqlite://, mysql+pymysql:// or postgresql+psycopg://",
        ) from None
    except ImportError as exc:
        raise UsageError(
            f"the database driver for {parsed.drivername!r} is not installed ({exc.name})",
            "install ucware-contactsync[mariadb] or ucware-contactsync[postgresql]",
        ) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def check_connection(engine: Engine) -> None:
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot connect to the database {redact(engine.url)}: {reason}",
            "check that the database server runs and the URL (--db / CONTACTSYNC_DB_URL) is right",
        ) from None


def _alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> str:
    """Create or upgrade the schema to the newest revision; returns that revision."""
    from alembic import command
    from alembic.script import ScriptDirectory

    check_connection(engine)
    cfg = _alembic_config(engine)
    command.upgrade(cfg, "head")
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


def require_schema(engine: Engine) -> None:
    check_connection(engine)
    try:
        tables = set(inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        raise DatabaseError(f"cannot read the database: {exc}") from None
    if "phonebooks" not in tables or "kv_store" not in tables:
        raise DatabaseError(
            f"the database {redact(engine.url)} has no contactsync schema",
            "run 'ucware-contactsync db init' first",
        )


class Database:
    """An engine plus a session factory; ``session()`` commits or rolls back as one unit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._factory() as sess:
            try:
                yield sess
                sess.commit()
            except BaseException:
                sess.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
