"""Database URL resolution, engines and the Alembic-managed schema."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Dialect, Engine, Table, create_engine, event, insert, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from . import logs
from .contact import compact_json
from .errors import DatabaseError, DatabaseFull, DatabaseUnavailable, UsageError

if TYPE_CHECKING:
    from alembic.config import Config

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
    if cli_url is not None:
        if not cli_url.strip():
            raise UsageError("--db is empty", "give --db URL, or leave --db out for the "
                             "default database")
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
    """The URL without its password, by SQLAlchemy's own parsing; never the raw text."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "(malformed URL, not shown)"
    if parsed.host and "@" in parsed.host:
        # An unescaped "@" in the password: SQLAlchemy splits at the first one and takes
        # the rest of the password for the host; only the part after the last "@" is host.
        parsed = parsed.set(password="***", host=parsed.host.rsplit("@", 1)[1])
    if any(k.lower() == "password" for k in parsed.query):  # ...?password= (libpq)
        parsed = parsed.update_query_dict({k: "***" for k in parsed.query
                                           if k.lower() == "password"})
    return parsed.render_as_string(hide_password=True)


def parse_url(url: str) -> URL:
    if not url.strip():
        raise UsageError("the database URL is empty",
                         "give --db URL, or leave --db out for the default database")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            "malformed database URL (not shown: it may hold a password)",
            "use e.g. sqlite:////var/lib/ucware-contactsync/contactsync.db or "
            "mysql+pymysql://user:pass@host/db or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.host and "@" in parsed.host:
        raise UsageError(f"the password in the database URL {redact(url)} contains '@'",
                         "write each '@' in the password as %40 (URL encoding)")
    logs.register_secret(parsed.password if isinstance(parsed.password, str) else None)
    query_password = parsed.query.get("password")
    logs.register_secret(query_password if isinstance(query_password, str) else None)
    # MariaDB: always utf8mb4 so umlauts and emoji round-trip.
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def make_engine(url: str) -> Engine:
    parsed = parse_url(url)
    # JSON columns (an entry's e-mails and categories) as compact_json writes them: orjson,
    # several times faster than SQLAlchemy's json.dumps, for a column read back by parsing.
    kwargs: dict[str, Any] = {"future": True, "json_serializer": compact_json}
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "mysql", "mariadb", "postgresql"):
        raise UsageError(f"unsupported database {backend!r}",
                         "use sqlite://, mysql+pymysql:// (MariaDB) or postgresql+psycopg://")
    if backend == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            try:
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create the directory of the SQLite database {db}: "
                                 f"{exc.strerror}", "give --db a path in a writable directory"
                                 ) from None
            _create_private(Path(db))
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


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (SQLite would use 0666 minus the
    umask); its -wal and -shm files get the database file's mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # exists already, or not creatable: SQLite reports the latter on connect


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
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
        # A full disk is no connection problem: SQLite in WAL mode cannot even open.
        failure = database_failure(exc, engine.url)
        if isinstance(failure, DatabaseFull):
            raise failure from None
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot connect to the database {redact(engine.url)}: {reason}",
            "check that the database server runs and the URL (--db / CONTACTSYNC_DB_URL) is right",
        ) from None


# MariaDB client errors of a server that is gone: can't connect (2002 socket, 2003 TCP),
# gone away (2006), lost during a query (2013), lost while reading/writing (2055).
_MYSQL_GONE = {2002, 2003, 2006, 2013, 2055}
# MariaDB: disk full (1021), table full (1114); PostgreSQL SQLSTATE disk_full.
_MYSQL_FULL = {1021, 1114}
_PG_FULL = "53100"
# SQLite primary result codes (the low byte of the extended code).
_SQLITE_IOERR, _SQLITE_FULL = 10, 13
_LITTLE_SPACE = 1 << 20


def _little_space(url: str | URL | None) -> bool:
    """The filesystem of a SQLite file has (almost) no space left: then SQLite's "disk I/O
    error" (it cannot create or grow the -shm/-wal files) means a full disk."""
    try:
        path = make_url(url).database if url is not None else None
        if not path or path == ":memory:" or path.startswith("file:"):
            return False
        st = os.statvfs(Path(path).parent)
    except (ArgumentError, OSError):
        return False
    return st.f_bavail * st.f_frsize < _LITTLE_SPACE


def database_failure(exc: BaseException,
                     url: str | URL | None = None) -> DatabaseUnavailable | None:
    """The database itself failed (disk full, server gone) as one line with what to do, or
    None for any other error. Exit code 1: a temporary failure; the transaction that was
    being written was rolled back, so running the command again is safe."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    reason = lines[0] if lines else type(orig).__name__
    args: tuple[Any, ...] = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code is not None and len(args) > 1:  # pymysql: (2013, 'Lost connection ...')
        reason = f"error {code}: {(str(args[1]).strip().splitlines() or [''])[0]}"
    sqlite = (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF
    sqlstate = getattr(getattr(orig, "diag", None), "sqlstate", None)
    text = reason.lower()
    where = f" {redact(url)}" if url else ""
    full = (sqlite == _SQLITE_FULL or (sqlite == _SQLITE_IOERR and _little_space(url))
            or code in _MYSQL_FULL or sqlstate == _PG_FULL or "no space left" in text)
    if full:
        return DatabaseFull(f"the database{where} is full ({reason})",
                            "free disk space where the database keeps its files (SQLite: the "
                            "file's filesystem; MariaDB/PostgreSQL: the server's data "
                            "directory), then run it again; nothing half-written was kept")
    if (getattr(exc, "connection_invalidated", False) or code in _MYSQL_GONE
            or (type(orig).__module__.startswith("psycopg") and type(orig).__name__ ==
              "OperationalError" and (sqlstate is None or sqlstate.startswith(("08", "57P"))))):
        return DatabaseUnavailable(f"lost the connection to the database{where} ({reason})",
                                   "check that the database server runs, then run it again; "
                                   "nothing half-written was kept")
    return None


def _alembic_config(engine: Engine) -> Config:
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
    if "history_runs" not in tables:  # written by an older version: upgrade before writing
        raise DatabaseError(
            f"the schema of the database {redact(engine.url)} is older than this program",
            "run 'ucware-contactsync db init' to upgrade it (nothing is lost)",
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


@lru_cache(maxsize=64)
def _bulk_insert(table: Table, keys: tuple[str, ...], dialect: Dialect
                 ) -> tuple[str, list[str], list[Any]] | None:
    """(SQL, parameter names in order, bind processor per name) of an INSERT of ``keys``, or
    None when the statement needs more than those columns (defaults SQLAlchemy fills in)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    if set(compiled.binds) != set(keys):
        return None
    names = list(compiled.positiontup or ()) if dialect.positional else list(keys)
    procs = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    return str(compiled), names, procs


def insert_many(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) in the session's transaction, as one
    executemany on the driver: SQLAlchemy's own executemany builds and processes a parameter
    set per row (benchmarks/writer.py: 1.50 s with it, 1.28 s without). Here the statement is
    compiled once and each column's SQLAlchemy bind processor (JSON, DateTime) is applied per
    value; anything else (rows of differing keys, columns left to defaults) goes through
    SQLAlchemy."""
    if not rows:
        return
    conn = session.connection()
    keys = tuple(rows[0])
    plan = _bulk_insert(table, keys, conn.dialect)
    if plan is None or any(len(r) != len(keys) for r in rows):  # a missing key: KeyError
        session.execute(insert(table), list(rows))
        return
    sql, names, procs = plan
    columns: list[list[Any]] = []
    for name, proc in zip(names, procs, strict=True):
        raw = [r[name] for r in rows]
        if proc is None:
            columns.append(raw)
            continue
        # A value shared by every row (the run's timestamp) is processed once.
        first = raw[0]
        if all(v is first for v in raw):
            columns.append([proc(first)] * len(raw))
        else:
            columns.append([proc(v) for v in raw])
    params: Any = (list(zip(*columns, strict=True)) if conn.dialect.positional
                   else [dict(zip(names, v, strict=True)) for v in zip(*columns, strict=True)])
    conn.exec_driver_sql(sql, params)
