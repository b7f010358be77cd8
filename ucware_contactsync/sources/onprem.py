"""On-premises Exchange (office365=false): the service account's logon over NTLM.

A wrong password must never lock the service account out: Active Directory locks an account
after a few failed logons (the lockout threshold, often 5 or 10 within 30 minutes), and with
NTLM every new connection of every worker thread is a logon. So until one request has gone
through, requests run one at a time, and after the second refusal in a run nothing is sent
any more: a run costs at most two failed logons, whatever the number of mailboxes and
workers. (A password changed while a run is under way can add one refusal per request that
is already on the wire.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from exchangelib.errors import UnauthorizedError

from .base import Kind, SourceError

T = TypeVar("T")

MAX_REFUSALS = 2
RETRY_PAUSE = 1.0  # s before the second try (a 401 from a busy server, a DC not yet replicated)
_LOCKED = "locked out"


def refusal(account: str, exc: Exception, tries: int) -> SourceError:
    """The one line for a refused service account."""
    if _LOCKED in str(exc):
        return SourceError(
            Kind.AUTH, f"the service account {account} is locked out in Active Directory",
            "have it unlocked (Unlock-ADAccount), then check ews_password: this program tries "
            "a refused password at most twice per run")
    times = "twice" if tries >= 2 else "once"
    return SourceError(
        Kind.AUTH, f"Exchange refused the service account {account} ({times}; not tried "
                   "again in this run, so that the account is not locked out)",
        "check ews_username (DOMAIN\\user or user@domain) and ews_password; after a password "
        "change store the new one with 'ucware-contactsync configure'")


class LogonGuard:
    """Runs EWS requests so that a refused service account is tried at most twice a run."""

    def __init__(self, account: str, pause: float = RETRY_PAUSE) -> None:
        self.account = account
        self.pause = pause
        self.signed_in = False
        self.refusals = 0
        self._given_up: SourceError | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], T]) -> T:
        if self.signed_in:
            try:
                return fn()
            except UnauthorizedError as exc:  # e.g. the password changed during the run
                with self._lock:
                    self.signed_in = False
                    self._refused(exc)
        with self._lock:  # until a logon worked: one request at a time
            while True:
                if self._given_up is not None:
                    raise self._given_up
                try:
                    result = fn()
                except UnauthorizedError as exc:
                    self._refused(exc)
                    if self._given_up is None:
                        time.sleep(self.pause)
                    continue
                self.signed_in = True
                return result

    def _refused(self, exc: UnauthorizedError) -> None:
        self.refusals += 1
        if self.refusals >= MAX_REFUSALS or _LOCKED in str(exc):
            self._given_up = refusal(self.account, exc, self.refusals)
