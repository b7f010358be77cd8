"""The mass-deletion guard: one rule for personal and shared phonebooks.

A source that suddenly returns nothing or little (a wrong mailbox, a lost permission, a full
read that came back short) is not mirrored: removing more than ``guard_percent`` of a
phonebook's synced entries needs --force. Fewer than ``GUARD_MIN`` removals always pass, so
that small phonebooks can still change.
"""

from __future__ import annotations

GUARD_MIN = 5


def refusal(title: str, synced: int, removes: int, percent: int, force: bool,
            confirm: str) -> str:
    """Why this write is refused without --force (empty: it is not); ``confirm`` is the
    command that overrides it."""
    if force or removes < GUARD_MIN or removes * 100 <= percent * synced:
        return ""
    return (f"refused: this run would remove {removes} of the {synced} synced entries of "
            f"phonebook {title!r} ({removes * 100 // synced} %), more than guard_percent "
            f"({percent} %) allows; nothing was changed. If these contacts really are gone, "
            f"confirm with '{confirm}'")
