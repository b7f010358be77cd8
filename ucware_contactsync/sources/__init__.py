"""Contact sources behind one interface, and the choice between them (key ``api``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..settings import Settings
from .auth import TokenProvider, scope_for
from .base import ContactSource, Kind, MailboxRead, SourceError

__all__ = ["ContactSource", "Kind", "MailboxRead", "SourceError", "Choice", "choose", "open_source"]

log = logging.getLogger(__name__)

GRAPH_ROLES = {"Contacts.Read", "Contacts.ReadWrite"}
EWS_ROLE = "full_access_as_app"
EWS_SUNSET = ("EWS in Exchange Online is blocked by default since 2026-10-01 and ends on "
              "2027-04-01: grant the app the Microsoft Graph application permission "
              "Contacts.Read with admin consent, and api=auto switches to Graph by itself")


@dataclass
class Choice:
    api: str  # graph | ews
    reason: str
    warning: str = ""
    graph_tokens: TokenProvider | None = None
    ews_tokens: TokenProvider | None = None


def _tokens(s: Settings, api_url: str) -> TokenProvider:
    return TokenProvider(s.login_url, s.tenant_id, s.client_id, s.client_secret,
                         scope_for(api_url), s.verify)


def _require_app(s: Settings) -> None:
    from ..errors import ConfigError

    for key in ("tenant_id", "client_id", "client_secret"):
        if not getattr(s, key):
            raise ConfigError(f"key {key!r} is not set",
                              f"run 'ucware-contactsync configure' or "
                              f"'ucware-contactsync config set {key} VALUE'")


def choose(s: Settings) -> Choice:
    """Which API to use and why; ``api=auto`` decides by the roles in the app's tokens."""
    if not s.office365:
        return Choice("ews", "office365=false: on-premises Exchange is read through EWS")
    _require_app(s)
    if s.api == "graph":
        return Choice("graph", "api=graph is set", graph_tokens=_tokens(s, s.graph_url))
    if s.api == "ews":
        return Choice("ews", "api=ews is set", warning=EWS_SUNSET,
                      ews_tokens=_tokens(s, s.ews_url))
    graph = _tokens(s, s.graph_url)
    roles = set(graph.roles())
    if roles & GRAPH_ROLES:
        granted = ", ".join(sorted(roles & GRAPH_ROLES))
        return Choice("graph", f"api=auto and the app holds {granted} for Microsoft Graph",
                      graph_tokens=graph)
    ews = _tokens(s, s.ews_url)
    if EWS_ROLE in ews.roles():
        return Choice("ews", "api=auto and the app holds only full_access_as_app (EWS)",
                      warning=EWS_SUNSET, ews_tokens=ews)
    raise SourceError(Kind.AUTH, "the app holds neither Contacts.Read (Microsoft Graph) nor "
                      "full_access_as_app (EWS)",
                      "in Entra > App registrations > API permissions add the application "
                      "permission Microsoft Graph > Contacts.Read and grant admin consent")


def open_source(s: Settings, choice: Choice, include_subfolders: bool = True) -> ContactSource:
    if choice.api == "graph":
        from .graph import GraphSource

        return GraphSource(s, tokens=choice.graph_tokens, include_subfolders=include_subfolders)
    from .ews import EwsSource

    return EwsSource(s, tokens=choice.ews_tokens, include_subfolders=include_subfolders)
