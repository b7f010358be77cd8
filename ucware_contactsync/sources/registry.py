"""Every contact source in one table: its ``api`` name, label, class and token roles.

The settings validation (key ``api``), ``api=auto``, the command line and ``check`` read this
table. A new source is one module with a ``ContactSource`` subclass plus one line here; the
class is imported only when the source is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings
    from .base import ContactSource


@dataclass(frozen=True)
class SourceSpec:
    api: str  # the value of the key ``api``, and ``ContactSource.api``
    label: str  # the name admins read in logs
    module: str  # module below ``ucware_contactsync.sources``
    cls: str  # the ContactSource subclass in it
    url_key: str  # settings field of the API's URL; its origin is the token's scope
    roles: frozenset[str]  # app roles (Entra) that let api=auto pick this source
    auto_reason: str  # why api=auto picked it; {roles} = the roles held
    online_warning: str = ""  # shown whenever it reads Exchange Online
    on_premises: bool = False  # reads an on-premises Exchange Server (office365=false)

    def load(self) -> type[ContactSource]:
        module = importlib.import_module(f"{__package__}.{self.module}")
        cls: type[ContactSource] = getattr(module, self.cls)
        return cls

    def url(self, s: Settings) -> str:
        return str(getattr(s, self.url_key))


EWS_SUNSET = ("EWS in Exchange Online is blocked by default since 2026-10-01 and ends on "
              "2027-04-01: grant the app the Microsoft Graph application permission "
              "Contacts.Read with admin consent, and api=auto switches to Graph by itself")

# In the order api=auto prefers them; the first one is also its choice when no token
# carries a role.
SOURCES: dict[str, SourceSpec] = {spec.api: spec for spec in (
    SourceSpec("graph", "Microsoft Graph", "graph", "GraphSource", "graph_url",
               frozenset({"Contacts.Read", "Contacts.ReadWrite"}),
               "api=auto and the app holds {roles} for Microsoft Graph"),
    SourceSpec("ews", "EWS", "ews", "EwsSource", "ews_url", frozenset({"full_access_as_app"}),
               "api=auto and the app holds only {roles} (EWS)", online_warning=EWS_SUNSET,
               on_premises=True),
)}
