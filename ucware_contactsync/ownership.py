"""Who keeps a phonebook current, and the one rule for who may write it.

Every phonebook has an owner (``Phonebook.source``), every entry an origin (``Entry.origin``,
NULL for entries typed by hand). A phonebook filled from a source (the mailbox sync, later
company directories and shared mailboxes) is that source's alone; it never takes over a
phonebook typed by hand or filled by CSV import, and a CSV import never fills a synced one.
``may_write`` is the only place that decides this: the sync engine and the CSV importer both
ask it, and a new source adds its ``Origin`` member and, if it keeps phonebooks current, its
entry in ``SYNCED``.
"""

from __future__ import annotations

import enum


class Origin(enum.StrEnum):
    """Who made a phonebook (``Phonebook.source``) or an entry (``Entry.origin``)."""

    HAND = "manual"        # typed in by the user (UCC client, ``phonebook add``)
    CSV = "csv"            # ``import-csv``
    VCARD = "vcard"        # ``import-vcard``: a file import like CSV, with its own phonebooks
    MAILBOX = "office365"  # the mailbox sync (Graph or EWS)
    # Shared (company) phonebooks, no owner: sync/shared.py.
    DIRECTORY = "directory"  # Entra users (and mail contacts) through Graph
    SHARED_MAILBOX = "shared-mailbox"  # a shared mailbox's contacts (Graph or EWS)
    PUBLIC_FOLDER = "public-folder"  # an on-premises public folder (EWS)

    @property
    def entry_origin(self) -> str | None:
        """What ``Entry.origin`` holds for entries of this origin (hand entries: NULL)."""
        return None if self is Origin.HAND else self.value

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {Origin.HAND: "typed in by hand", Origin.CSV: "filled by CSV import",
           Origin.MAILBOX: "kept by the Office 365 sync",
           Origin.VCARD: "filled by vCard import",
           Origin.DIRECTORY: "kept from the Entra directory",
           Origin.SHARED_MAILBOX: "kept from a shared mailbox",
           Origin.PUBLIC_FOLDER: "kept from a public folder"}

# Origins that keep a phonebook current from a source: such a phonebook is theirs alone.
SYNCED = frozenset({Origin.MAILBOX, Origin.DIRECTORY, Origin.SHARED_MAILBOX,
                    Origin.PUBLIC_FOLDER})
# The origins of shared phonebooks (no owner).
SHARED = (Origin.DIRECTORY, Origin.SHARED_MAILBOX, Origin.PUBLIC_FOLDER)
# File imports: they write their own phonebooks and hand-made ones (never the hand entries).
FILE_IMPORTS = frozenset({Origin.CSV, Origin.VCARD})


def origin_of(source: str | None) -> Origin | None:
    """The ``Origin`` of a stored ``Phonebook.source`` (None: no such phonebook)."""
    return None if source is None else Origin(source)


def may_write(owner: Origin | str | None, writer: Origin,
              reserved: Origin | None = None) -> Origin | None:
    """The owner a phonebook has after ``writer`` writes it, or None if it may not.

    ``owner``: the phonebook's current owner (None: it does not exist yet). ``reserved``: a
    synced origin that keeps this title for this user (the title ``phonebookname`` of a user
    the mailbox sync selects), which decides who may create it.

    * Entries typed by hand go into any phonebook; a new one under a reserved title is the
      synced phonebook to be (the user types into the phonebook the sync keeps).
    * A synced origin writes only its own phonebooks and creates new ones; it never takes
      over one typed by hand, filled by CSV or kept by another source.
    * A file import (CSV, vCard) writes its own phonebooks and hand-made ones (whose hand
      entries it never touches), never a synced one or the other import's, and does not
      create one under a reserved title.
    """
    owner = origin_of(owner) if isinstance(owner, str) else owner
    if owner is None:
        if reserved is None or writer is reserved:
            return writer
        return reserved if writer is Origin.HAND else None
    if owner is writer or writer is Origin.HAND:
        return owner
    if writer in FILE_IMPORTS and owner is Origin.HAND:
        return owner
    return None
