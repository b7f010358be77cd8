"""A private MariaDB server (own datadir, port and socket) that a case may kill and restart.

The shared server on 3306 serves the other tests; this one lives in a temporary directory
and dies with the case.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, text

BINARIES = ("mariadbd", "mariadb-install-db")
SEARCH = "/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin"


class ServerUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateMariaDB:
    def __init__(self) -> None:
        found = {b: shutil.which(b) or shutil.which(b, path=SEARCH) for b in BINARIES}
        missing = [b for b, p in found.items() if not p]
        if missing:
            raise ServerUnavailable(f"{', '.join(missing)} not installed")
        self.mariadbd, self.install_db = found["mariadbd"], found["mariadb-install-db"]
        # A short path: the socket's path must stay under ~100 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="csmdb-"))
        self.datadir = self.dir / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateMariaDB:
        try:
            self.install()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def install(self) -> None:
        r = subprocess.run(
            [self.install_db, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise ServerUnavailable(f"mariadb-install-db failed: {' / '.join(tail)}")

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - kept for the child
        self.proc = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self.datadir}",
             f"--port={self.port}", f"--socket={self.dir / 'sock'}", "--bind-address=127.0.0.1",
             "--user=root", f"--pid-file={self.dir / 'pid'}", "--skip-log-bin",
             "--innodb-buffer-pool-size=64M", "--max-connections=50"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"mariadbd exited with {self.proc.returncode}: "
                                        f"{self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                engine = create_engine(self.server_url() + "/mysql")
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                engine.dispose()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise ServerUnavailable(f"mariadbd did not answer within {timeout:.0f} s: "
                                f"{self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: InnoDB recovers on the next start."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def server_url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def create_database(self, name: str) -> str:
        engine = create_engine(self.server_url() + "/mysql", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 "
                              "COLLATE utf8mb4_bin"))
        engine.dispose()
        return f"{self.server_url()}/{name}"

    def _log_tail(self) -> str:
        try:
            lines = (self.dir / "server.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " / ".join(ln.strip() for ln in lines[-3:])
