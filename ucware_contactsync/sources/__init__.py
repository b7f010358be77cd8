"""Contact sources behind one interface, and the choice between them (key ``api``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConfigError
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
    # No role in either token: either nothing is granted yet, or Exchange Online RBAC for
    # Applications grants Contacts.Read inside Exchange, which tokens do not show. Graph is
    # the only API with a future; a missing grant shows up per mailbox as "access denied".
    return Choice("graph", "api=auto and the token carries no roles (none granted in Entra; "
                  "RBAC for Applications grants are not visible in tokens)",
                  warning="the app's token holds neither Contacts.Read nor full_access_as_app: "
                  "if no RBAC for Applications role assignment grants Contacts.Read, add the "
                  "application permission Microsoft Graph > Contacts.Read with admin consent",
                  graph_tokens=graph)


def open_source(s: Settings, choice: Choice, include_subfolders: bool = True) -> ContactSource:
    if choice.api == "graph":
        from .graph import GraphSource

        return GraphSource(s, tokens=choice.graph_tokens, include_subfolders=include_subfolders)
    from .ews import EwsSource

    return EwsSource(s, tokens=choice.ews_tokens, include_subfolders=include_subfolders)
