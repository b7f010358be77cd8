"""ucware-contactsync: Outlook contacts and CSV files into UCware phonebooks."""

__version__ = "0.1.0"
