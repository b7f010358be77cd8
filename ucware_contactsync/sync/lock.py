"""One writer at a time: a manual run and the nightly run never write together.

``flock`` on a file: the kernel drops the lock when the holder exits, however it dies, so a
killed run never blocks the next one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path
from types import TracebackType

from ..db import redact, state_dir
from ..errors import LockedError


def lock_path(db_url: str) -> Path:
    base = Path(os.environ.get("CONTACTSYNC_LOCK_DIR") or state_dir())
    digest = hashlib.sha256(redact(db_url).encode()).hexdigest()[:12]
    return base / f"sync-{digest}.lock"


class RunLock:
    def __init__(self, db_url: str) -> None:
        self.path = lock_path(db_url)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # owner only
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockedError(f"another sync is running (pid {holder}, lock {self.path})",
                              "wait for it to finish; this run changed nothing") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    """The pid the holder wrote into the lock file. A holder that has just taken the lock may
    not have written it yet (the file is empty, or still names a killed predecessor): then
    read again for a moment rather than name no one or a dead process."""
    text = ""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit() and _alive(int(text)):
            return text
        time.sleep(0.01)
    return text or "?"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
