"""E.164 of large reads in a worker process, beside the run.

libphonenumber takes 25-50 µs a number, the biggest single cost of a first sync, and in one
process it shares the interpreter lock with reading and writing. On a machine with a second
core the engine hands each large read's numbers to one worker process as soon as the read is
complete; the writer, busy with the mailbox before, takes the answers when it gets there.

The worker runs ``phone.to_e164`` itself, so the E.164 written is the same. The worker is an
optimisation only: if it cannot start, dies or is slow, the writer computes what is missing in
its own process, as it always did. It is spawned, not forked: a fork would inherit the run's
lock file and database connections.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from ..phone import to_e164

log = logging.getLogger(__name__)

MIN_NUMBERS = 100  # a read with fewer is written before a round trip to the worker pays off
WAIT = 30.0  # seconds the writer waits for an answer before computing it itself
PARENT_POLL = 0.5  # seconds between the worker's checks that the run is still there
NICE = 10  # the worker's priority below the run's

E164 = dict[str, str | None]


def _start(run_pid: int) -> None:
    """The worker's set-up: Ctrl-C reaches the whole process group, but only the run answers
    it; and the worker ends when the run is gone. Its queue does not tell: the worker holds
    both ends of the queue's pipe, so a killed run (SIGKILL, the OOM killer) would leave it
    waiting forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The writer is the run's critical path: where the worker and the writer want the same
    # core, the writer gets it; the worker fills the idle one (docs/performance.md).
    try:
        os.nice(NICE)
    except OSError:  # not allowed here: the worker runs at the run's priority
        pass

    def watch() -> None:
        while os.getppid() == run_pid:
            time.sleep(PARENT_POLL)
        os._exit(0)

    threading.Thread(target=watch, name="run-watch", daemon=True).start()


def _normalise(numbers: list[str], region: str, area_code: str) -> E164:
    return {n: to_e164(n, region, area_code) for n in numbers}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class NumberWorker:
    """One worker process, started with the first large read; ``close()`` ends it."""

    def __init__(self, region: str, area_code: str, min_numbers: int | None = None) -> None:
        self.region = region
        self.area_code = area_code
        self.min_numbers = MIN_NUMBERS if min_numbers is None else min_numbers
        self.enabled = _cores() > 1
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, numbers: Iterable[str]) -> Future[E164] | None:
        """Start normalising ``numbers``; None when there are too few to be worth it or no
        worker can run (the writer then computes them itself)."""
        if not self.enabled:
            return None
        distinct = list(dict.fromkeys(numbers))
        if len(distinct) < self.min_numbers:
            return None
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start, initargs=(os.getpid(),))
            return self._pool.submit(_normalise, distinct, self.region, self.area_code)
        except Exception as exc:  # noqa: BLE001 - the run goes on without the worker
            self._give_up(exc)
            return None

    def take(self, fut: Future[E164] | None) -> E164:
        """The answers of ``submit``; empty when there are none (computed by the caller)."""
        if fut is None:
            return {}
        try:
            return fut.result(timeout=WAIT)
        except Exception as exc:  # noqa: BLE001 - see module doc
            fut.cancel()
            self._give_up(exc)
            return {}

    def _give_up(self, exc: BaseException) -> None:
        log.debug("number worker not used any more: %s: %s", type(exc).__name__, exc)
        self.enabled = False
        self.close(wait=False)

    def close(self, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> NumberWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
