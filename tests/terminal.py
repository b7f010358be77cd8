"""A program on a pseudo-terminal (pexpect), as in an admin's ssh session, with the whole
transcript kept: prompts, echoed input, stdout and stderr. getpass switches echo off there,
so a secret typed at its prompt must not appear in ``text``."""

from __future__ import annotations

import io
import signal

import pexpect


def _default_sigint() -> None:
    # As in an admin's shell, Ctrl-C interrupts (a CI runner may hand SIGINT down as ignored).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], timeout: float = 60) -> None:
        self._log = io.StringIO()
        self.child = pexpect.spawn(argv[0], argv[1:], env=env, timeout=timeout,
                                   preexec_fn=_default_sigint, dimensions=(24, 200),
                                   encoding="utf-8", codec_errors="replace")
        self.child.logfile_read = self._log  # output is only read in expect/wait: none lost

    @property
    def text(self) -> str:
        return self._log.getvalue()

    def expect(self, text: str, timeout: float | None = None) -> None:
        try:
            self.child.expect_exact(text, timeout=timeout or self.child.timeout)
        except (pexpect.TIMEOUT, pexpect.EOF):
            self.child.terminate(force=True)
            raise AssertionError(f"did not see {text!r}; terminal so far:\n{self.text}"
                                 ) from None

    def send(self, line: str) -> None:
        self.child.sendline(line)

    def interrupt(self) -> None:
        self.child.sendintr()

    def wait(self, timeout: float = 120) -> int:
        """Exit code of the program (negative signal number if it was killed)."""
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT:
            self.child.terminate(force=True)
            raise AssertionError(f"did not finish; terminal:\n{self.text}") from None
        self.child.close()
        if self.child.signalstatus is not None:
            return -self.child.signalstatus
        return int(self.child.exitstatus or 0)
