"""Checks of the command line's values before any command runs: bad input gets one line
naming the argument and the limit (exit 2), never "unexpected error".

Limits are the database's column sizes: a longer value would fail deep inside a write.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import UsageError
from ..model import EMAIL_LEN, NAME_LEN
from ..phonebook import clean_title

# dest -> (maximum length, what it is)
LIMITS: dict[str, tuple[int, str]] = {
    "email": (EMAIL_LEN, "an e-mail address"),
    "user": (EMAIL_LEN, "an e-mail address"),
    "mailbox": (EMAIL_LEN, "an e-mail address"),
    "name": (NAME_LEN, "a name"),
    "group": (NAME_LEN, "a group name"),
    "phonebook": (NAME_LEN, "a phonebook title"),
    "company": (NAME_LEN, "a company"),
}
TITLES = ("phonebook",)  # one line of text: control characters go, as in entries
_SURROGATE = re.compile("[\ud800-\udfff]")


def _label(dest: str, argv: list[str]) -> str:
    option = "--" + dest.replace("_", "-")
    return option if any(a == option or a.startswith(option + "=") for a in argv) \
        else dest.upper()


def check(args: argparse.Namespace, argv: list[str]) -> None:
    """Raise UsageError for the first bad value; clean titles in place."""
    for dest, value in list(vars(args).items()):
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str):
                continue
            label = _label(dest, argv)
            if _SURROGATE.search(v):
                # Python keeps bytes that are not UTF-8 as surrogates (PEP 383).
                raise UsageError(f"{label} holds bytes that are not UTF-8",
                                 "type it again in a UTF-8 terminal (e.g. LANG=de_DE.UTF-8)")
            if dest in LIMITS:
                limit, what = LIMITS[dest]
                if len(v) > limit:
                    raise UsageError(f"{label} is {len(v)} characters long; {what} may have "
                                     f"at most {limit}")
        if dest in TITLES and isinstance(value, str):
            title = clean_title(value)
            if not title:
                raise UsageError(f"{_label(dest, argv)} is empty",
                                 "give a title with visible characters")
            setattr(args, dest, title)


def tolerant_output() -> None:
    """A terminal that is not UTF-8 gets escapes for what it cannot show, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (stream.encoding or "").lower().replace("-", "") \
                not in ("utf8", "utf_8"):
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
