"""The real program as a child process, for faults that need a process to kill.

stderr lines are read as they come and kept with the time they came, so a case can aim a
SIGKILL at the write phase: with ``-v`` the engine logs one line per user right after that
user's transaction has committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TRACEBACK = ("Traceback (most recent call last)", '  File "')


@dataclass
class Result:
    code: int  # negative: killed by that signal (-9 = SIGKILL)
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    @property
    def headline(self) -> str:
        """The line an admin reads first: the error, else a failure, else the last line."""
        for prefix in ("error:", "unexpected error:"):
            hit = [ln for ln in self.lines if ln.startswith(prefix)]
            if hit:
                return hit[0]
        failed = [ln for ln in self.lines if ": FAILED: " in ln]
        return (failed or self.lines or ["(no output)"])[-1 if not failed else 0]


class Proc:
    """A running ``python -m ucware_contactsync``."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 entry: tuple[str, ...] = ("-m", "ucware_contactsync")) -> None:
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, *entry, *argv],
            env=env if env is not None else child_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            errors="replace")
        self.pid = self.popen.pid
        self.lines: list[tuple[float, str]] = []  # (seconds since start, line)
        self._out: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._readers = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_err(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._cond:
                self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_out(self) -> None:
        assert self.popen.stdout is not None
        self._out.extend(self.popen.stdout)

    def wait_line(self, pred: Callable[[str], bool], count: int = 1,
                  timeout: float = 120.0) -> float | None:
        """Seconds since start at which the ``count``-th line matching ``pred`` arrived; None
        if the child closed stderr (ended) or the timeout passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [t for t, ln in self.lines if pred(ln)]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is rolled back or released by the process."""
        if self.popen.poll() is None:
            self.popen.kill()

    def finish(self, timeout: float = 300.0) -> Result:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        for t in self._readers:
            t.join(10)
        with self._cond:
            err = "".join(ln + "\n" for _, ln in self.lines)
        return Result(code, "".join(self._out), err)


def child_env() -> dict[str, str]:
    """This process's environment (the Lab's lock directory, no syslog) for a child."""
    env = dict(os.environ)
    env.update(CONTACTSYNC_SYSLOG="0", PYTHONUNBUFFERED="1")
    env.pop("CONTACTSYNC_DB_URL", None)
    return env


def start(db_url: str, *argv: str, entry: tuple[str, ...] = ("-m", "ucware_contactsync")
          ) -> Proc:
    return Proc(["--db", db_url, *argv], entry=entry)


def run(db_url: str, *argv: str, timeout: float = 300.0,
        entry: tuple[str, ...] = ("-m", "ucware_contactsync")) -> Result:
    return start(db_url, *argv, entry=entry).finish(timeout)


def is_user_line(line: str) -> bool:
    """``anna@contoso.de: 3 added, 1 updated, 0 removed, 9 unchanged (incremental, graph)``:
    logged with ``-v`` once that user's phonebook has committed."""
    head = line.split(": ", 1)[0]
    return "@" in head and " " not in head and " added, " in line and " removed, " in line


def is_using_line(line: str) -> bool:
    """``using Microsoft Graph: ...``: logged with ``-v`` once the run holds the lock."""
    return line.startswith("using ")


def clarity_problems(res: Result, *, allow_user_lines: bool = True) -> list[str]:
    """What makes the output unclear to an admin: a traceback, an over-long or multi-line
    error, more than one error line."""
    bad = []
    if any(marker in res.err for marker in TRACEBACK):
        bad.append("a traceback without -vv")
    errors = [ln for ln in res.lines if ln.startswith(("error:", "unexpected error:"))]
    if len(errors) > 1:
        bad.append(f"{len(errors)} error lines")
    for ln in res.lines:
        known = (ln.startswith(("error:", "sync via ", "using ", "warning: "))
                 or ": FAILED: " in ln or (allow_user_lines and is_user_line(ln)))
        if not known:
            bad.append(f"unexpected output line {ln[:120]!r}")
        elif len(ln) > 600:
            bad.append(f"a {len(ln)}-character line")
    return bad
