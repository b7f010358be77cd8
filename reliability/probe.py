"""Is some other connection in the middle of a write transaction right now?

Asked just before a SIGKILL, it tells whether the kill cut a transaction in half (the
interesting case) or fell between two commits.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from ucware_contactsync.db import make_engine

QUERIES = {
    # InnoDB transactions of this database's connections that changed a row.
    "mysql": ("SELECT COUNT(*) FROM information_schema.innodb_trx t "
              "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
              "WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID() AND t.trx_rows_modified > 0"),
    # A backend gets a transaction id only when it writes.
    "postgresql": ("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"),
}


class WriteProbe:
    def __init__(self, db_url: str) -> None:
        url = make_url(db_url)
        self.backend = url.get_backend_name()
        self.path = url.database or ""
        self._engine = None if self.backend == "sqlite" else make_engine(db_url)
        self._conn: Connection | None = None

    def __enter__(self) -> WriteProbe:
        if self._engine is not None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()

    def writing(self) -> bool:
        if self.backend == "sqlite":
            # The write lock is taken by a writer's first change and held until its commit.
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                conn.close()
        assert self._conn is not None
        return bool(self._conn.execute(text(QUERIES[self.backend])).scalar())
