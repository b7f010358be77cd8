"""Microsoft Graph source: ``source`` (the reads), ``folders`` (folder delta), ``batch``
(JSON batching and MailboxConcurrency), ``client`` (one request and its answer), ``mapping``
(Graph JSON -> Contact)."""

from .mapping import EXPAND, EXTENDED_NUMBERS, SELECT, to_contact
from .source import BULK_CHANGES, CONTACTS, GraphSource, _Call, _seg

__all__ = ["BULK_CHANGES", "CONTACTS", "EXPAND", "EXTENDED_NUMBERS", "SELECT", "GraphSource",
           "_Call", "_seg", "to_contact"]
