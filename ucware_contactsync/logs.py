"""Logging for a terminal and for cron: stderr always, syslog when not on a terminal.

Every handler passes through a filter that blanks registered secrets, so a secret that ends
up in an exception text or a library's debug output still never reaches a log.
"""

from __future__ import annotations

import base64
import json
import logging
import logging.handlers
import os
import re
import sys
from urllib.parse import quote_plus

LOGGER = "ucware_contactsync"
NOTICE = 25  # the run's summary line: shown by default and sent to syslog
logging.addLevelName(NOTICE, "NOTICE")
MASK = "********"


# -- redaction --------------------------------------------------------------------------------
# A secret reaches logs in the spellings the wire uses: raw, URL-encoded (%2B or %2b, a space
# as "+", or left as is by a lenient encoder), JSON-escaped, and inside base64 ("user:secret"
# of Basic auth). Each registered secret becomes one pattern matching all of them.

_patterns: dict[str, re.Pattern[str]] = {}  # secret -> pattern of its spellings


def _char_forms(ch: str) -> list[str]:
    """Regex alternatives for one character of a secret."""
    forms = {re.escape(ch)}
    pct = "".join(f"%(?i:{b:02x})" for b in ch.encode("utf-8"))
    forms.add(pct)
    escaped = json.dumps(ch)[1:-1]  # \" \\ \u00fc ...
    forms.add(re.escape(escaped))
    if ch == "/":
        forms.add(re.escape("\\/"))  # JSON may escape the slash
    if ch == " ":
        forms.add(re.escape("+"))
    if escaped.startswith("\\u"):  # either case of the hex digits
        forms.add(re.escape("\\u") + f"(?i:{escaped[2:]})")
    return sorted(forms, key=len, reverse=True)


def _base64_cores(value: str) -> list[str]:
    """The part of base64 that encodes ``value`` alone, for each of the three alignments it can
    have inside a longer text (such as ``client_id:secret``)."""
    data = value.encode("utf-8")
    cores = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + data).decode("ascii")
        start = -(-pad * 8 // 6)  # first character made of the secret's bits only
        end = (pad + len(data)) * 8 // 6  # after the last such character
        core = enc[start:end]
        if len(core) >= 8:  # shorter ones would blank ordinary text
            cores.append(core)
    return cores


def secret_pattern(value: str) -> re.Pattern[str]:
    """One regex for every wire spelling of ``value`` (see above)."""
    spelled = "".join(f"(?:{'|'.join(_char_forms(ch))})" for ch in value)
    cores = {c for v in (value, quote_plus(value)) for c in _base64_cores(v)}
    alternatives = [spelled, *(re.escape(c) for c in sorted(cores, key=len, reverse=True))]
    return re.compile("|".join(alternatives))


def register_secret(value: str | None) -> None:
    # Very short values are not redacted: they would blank ordinary words in messages.
    if value and len(value) >= 6 and value not in _patterns:
        _patterns[value] = secret_pattern(value)


# Access tokens are JWTs ("eyJ...") and travel as "Bearer ..."; requests-oauthlib and
# exchangelib put them into their debug logs (-vvv) before we could register them.
_TOKENS = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*|(?<=Bearer )[\w.~+/=-]{16,}",
                     re.IGNORECASE)


# Windows authentication (on-premises Exchange): the NTLM messages of every leg, bare (pyspnego:
# "NTLM step output: TlRMTVNTUA...", base64 of "NTLMSSP\0") or after their scheme (SPNEGO
# tokens too), and whatever an Authorization header carries in exchangelib's "Request
# headers: {...}". The authenticate message (type 3) holds the NTLMv2 response, from which
# the password can be cracked offline; the others are blanked so that no leg is half-shown.
_WINDOWS_AUTH = re.compile(
    r"TlRMTVNTUA[A-Za-z0-9+/=]*"
    r"|(?<=NTLM )[A-Za-z0-9+/=]{20,}|(?<=Negotiate )[A-Za-z0-9+/=]{20,}"
    r"|(?<=step input: )[A-Za-z0-9+/=]{20,}|(?<=step output: )[A-Za-z0-9+/=]{20,}"
    r"|(?<=[Aa]uthorization': ')[^']+|(?<=[Aa]uthorization\": \")[^\"]+"
    r"|(?<=[Aa]uthorization: )[^\r\n]+")


def redact(text: str) -> str:
    """``text`` with every registered secret (in any spelling), access token and Windows
    authentication message masked."""
    for pattern in (*tuple(_patterns.values()), _WINDOWS_AUTH, _TOKENS):
        text = pattern.sub(MASK, text)
    return text


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = redact(record.getMessage())
        record.msg, record.args = msg, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def _stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to "dev:inode" of the stream it connected to the journal."""
    want = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return bool(want) and want == f"{st.st_dev}:{st.st_ino}"


class JournalFormatter(logging.Formatter):
    """Prefix sd-daemon priorities so that `journalctl -p err` finds the failures."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, NOTICE: 5, logging.WARNING: 4,
                logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        prio = self.PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def setup(verbosity: int, quiet: bool) -> None:
    """verbosity 0: summary and failures; 1 (-v): a line per user; 2 (-vv): debug."""
    level = logging.ERROR if quiet else (logging.INFO if verbosity >= 1 else NOTICE)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    ours = logging.getLogger(LOGGER)
    ours.handlers.clear()
    ours.propagate = False
    ours.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.DEBUG if verbosity >= 2 else level)
    fmt = "%(message)s" if verbosity < 2 else "%(asctime)s %(name)s %(levelname)s %(message)s"
    journal = _stderr_is_journal()
    stderr.setFormatter(JournalFormatter(fmt) if journal else logging.Formatter(fmt))
    stderr.addFilter(RedactFilter())
    ours.addHandler(stderr)

    if verbosity >= 3:  # library internals (exchangelib, urllib3) only on request
        root.setLevel(logging.DEBUG)
        root.addHandler(stderr)
    else:
        # Without any root handler, logging's last resort prints the libraries' warnings
        # (exchangelib: "Decreasing session pool size ...") to stderr under our one line.
        root.addHandler(logging.NullHandler())
    # pyspnego's debug lines are nothing but authentication tokens (redacted anyway): never.
    logging.getLogger("spnego").setLevel(logging.INFO)

    # Under systemd stderr already goes to the journal: no second copy through syslog.
    if (not sys.stderr.isatty() and not journal
            and os.environ.get("CONTACTSYNC_SYSLOG", "1") != "0"):
        _add_syslog(ours)


def _add_syslog(logger: logging.Logger) -> None:
    for path in ("/dev/log", "/var/run/syslog"):
        if os.path.exists(path):
            try:
                handler = logging.handlers.SysLogHandler(address=path)
            except OSError:
                return
            handler.ident = "ucware-contactsync: "
            # The journal gets the summary and failures only, not per-user progress.
            handler.setLevel(NOTICE)
            handler.addFilter(RedactFilter())
            logger.addHandler(handler)
            return


def get(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)
