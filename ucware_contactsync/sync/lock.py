"""One writer at a time per database: a manual run and the nightly run never write together.

Two locks, both dropped by the kernel or the database server when the holder ends, however
it dies, so a killed run never blocks the next one:

* ``flock`` on a file in the state directory, keyed by the database (for SQLite the file's
  real path, so a relative path, a symlink or a second spelling of the URL is the same
  lock); the holder writes its pid there, which the loser names; for SQLite also ``flock``
  on ``<database>.lock`` beside the database file, so runs with different state
  directories (root by hand, the service user from cron) still meet;
* for MariaDB and PostgreSQL also a lock inside the database server, held by one connection
  for the whole run (MariaDB ``GET_LOCK`` named after the database, PostgreSQL a
  session-level advisory lock, which is per database anyway): two spellings of the same
  database (``127.0.0.1:3306`` and ``localhost``, other query options) or two machines
  writing the same database meet there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ..db import database_failure, make_engine, parse_url, redact, state_dir
from ..errors import LockedError

HINT = "wait for it to finish; this run changed nothing"
# MariaDB: lock names are server-wide, so the name carries the database (at most 64 chars).
MARIADB_LOCK = "SELECT GET_LOCK(CONCAT('ucware-contactsync.', SHA1(DATABASE())), 0)"
MARIADB_HOLDER = "SELECT IS_USED_LOCK(CONCAT('ucware-contactsync.', SHA1(DATABASE())))"
# PostgreSQL: advisory locks are per database; the two keys say "ucware-contactsync run".
PG_KEYS = (0x75637379, 1)  # "ucsy", 1
PG_LOCK = "SELECT pg_try_advisory_lock(:a, :b)"
PG_HOLDER = ("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
             "database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
             "AND classid = :a AND objid = :b AND objsubid = 2")


def lock_key(db_url: str) -> str:
    """What identifies the database: the SQLite file's real path, else the redacted URL."""
    try:
        parsed = parse_url(db_url)
    except Exception:  # noqa: BLE001 - an unparsable URL fails later with its own message
        return redact(db_url)
    db = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and db and db != ":memory:" \
            and not db.startswith("file:"):
        return "sqlite:" + os.path.realpath(db)
    return redact(db_url)


def lock_path(db_url: str) -> Path:
    base = Path(os.environ.get("CONTACTSYNC_LOCK_DIR") or state_dir())
    digest = hashlib.sha256(lock_key(db_url).encode()).hexdigest()[:12]
    return base / f"sync-{digest}.lock"


class RunLock:
    def __init__(self, db_url: str) -> None:
        self.url = db_url
        self.path = lock_path(db_url)
        self._fd: int | None = None
        self._beside: int | None = None
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> RunLock:
        self._take_file()
        try:
            self._take_beside()
            self._take_server()
        except BaseException:
            self._release_file()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._release_server()
        self._release_file()

    # -- the file ---------------------------------------------------------------------------

    def _take_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # owner only
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(f"another sync is running (pid {holder}, lock {self.path})",
                              HINT) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def _take_beside(self) -> None:
        key = lock_key(self.url)
        if not key.startswith("sqlite:"):
            return
        path = key.removeprefix("sqlite:") + ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a directory SQLite cannot write to fails the run later, clearly
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"another sync is running on database "
                              f"{key.removeprefix('sqlite:')} (lock {path})", HINT) from None
        self._beside = fd

    def _release_file(self) -> None:
        if self._beside is not None:
            fcntl.flock(self._beside, fcntl.LOCK_UN)
            os.close(self._beside)
            self._beside = None
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    # -- the database server ----------------------------------------------------------------

    def _take_server(self) -> None:
        backend = parse_url(self.url).get_backend_name()
        if backend not in ("mysql", "mariadb", "postgresql"):
            return
        self._engine = make_engine(self.url)
        try:
            # Autocommit: the lock connection never sits idle inside a transaction.
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
            if backend == "postgresql":
                a, b = PG_KEYS
                got = conn.execute(text(PG_LOCK), {"a": a, "b": b}).scalar()
                holder = None if got else conn.execute(text(PG_HOLDER),
                                                       {"a": a, "b": b}).scalar()
                who = f"PostgreSQL backend pid {holder or '?'}"
            else:
                got = conn.execute(text(MARIADB_LOCK)).scalar() == 1
                holder = None if got else conn.execute(text(MARIADB_HOLDER)).scalar()
                who = f"MariaDB connection {holder or '?'}"
        except LockedError:
            raise
        except Exception as exc:
            self._release_server()
            failure = database_failure(exc, self.url)
            if failure is not None:
                raise failure from None
            raise
        if not got:
            self._release_server()
            raise LockedError(f"another sync is running on database {redact(self.url)} "
                              f"({who}; possibly under another spelling of the URL)", HINT)

    def _release_server(self) -> None:
        # Closing the connection ends the session, which drops the lock on the server.
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001, S110 - the server drops it with the session
                pass
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _holder(fd: int) -> str:
    """The pid the holder wrote into the lock file. A holder that has just taken the lock may
    not have written it yet (the file is empty, or still names a killed predecessor): then
    read again for a moment rather than name no one or a dead process."""
    text_ = ""
    for _ in range(50):
        text_ = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text_.isdigit() and _alive(int(text_)):
            return text_
        time.sleep(0.01)
    return text_ or "?"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
