"""Ctrl-C (SIGINT) and SIGTERM end any run within seconds: one line, exit 130 or 143.

The first signal raises ``Interrupted`` in the main thread; the open phonebook transaction
rolls back and the run lock is released as the exception unwinds. Further signals are ignored
meanwhile, so a second Ctrl-C cannot cut that short. Mailbox reads still running in worker
threads (a throttled mailbox waits up to minutes) only read: a real process ends without
waiting for them (``exit_now``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM (the shell's convention)
        self.name = NAMES.get(signal.Signals(signum), f"signal {signum}")


def install() -> Callable[[], None]:
    """Route SIGINT and SIGTERM to ``Interrupted``; returns the function that restores the
    previous handlers. Outside the main thread (an embedding program) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    hit = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if hit.is_set():
            return  # already winding down: rollback and lock release must finish
        hit.set()
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in NAMES}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def code_of(exc: KeyboardInterrupt) -> tuple[int, str]:
    """(exit code, what stopped the run) for an interrupt."""
    if isinstance(exc, Interrupted):
        return exc.code, exc.name
    return 130, NAMES[signal.SIGINT]


def exit_now(code: int) -> None:
    """End the process without joining the worker threads still reading a mailbox."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
