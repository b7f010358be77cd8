"""Contact sources behind one interface, and the choice between them (key ``api``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConfigError
from ..settings import Settings
from .auth import TokenProvider, token_provider
from .base import ContactSource, Kind, MailboxRead, SourceError
from .registry import EWS_SUNSET, SOURCES, SourceSpec

__all__ = ["ContactSource", "Kind", "MailboxRead", "SourceError", "Choice", "choose",
           "open_source", "SOURCES", "SourceSpec", "token_provider", "EWS_SUNSET",
           "graph_tokens"]

log = logging.getLogger(__name__)


@dataclass
class Choice:
    api: str  # a key of SOURCES
    reason: str
    warning: str = ""
    tokens: TokenProvider | None = None  # None: the source signs in without Entra

    @property
    def label(self) -> str:
        return SOURCES[self.api].label


def graph_tokens(s: Settings) -> TokenProvider:
    """Tokens for Microsoft Graph (the directory phonebook needs them whatever ``api`` is)."""
    _require_app(s)
    return token_provider(s, s.graph_url)


def _require_app(s: Settings) -> None:
    for key in ("tenant_id", "client_id", "client_secret"):
        if not getattr(s, key):
            raise ConfigError(f"key {key!r} is not set",
                              f"run 'ucware-contactsync configure' or "
                              f"'ucware-contactsync config set {key} VALUE'")


def choose(s: Settings) -> Choice:
    """Which API to use and why; ``api=auto`` decides by the roles in the app's tokens."""
    if not s.office365:
        spec = next(spec for spec in SOURCES.values() if spec.on_premises)
        return Choice(spec.api, f"office365=false: on-premises Exchange is read through "
                                f"{spec.label}")
    _require_app(s)
    if s.api in SOURCES:
        spec = SOURCES[s.api]
        return Choice(spec.api, f"api={spec.api} is set", warning=spec.online_warning,
                      tokens=token_provider(s, spec.url(s)))
    first: Choice | None = None
    for spec in SOURCES.values():
        tokens = token_provider(s, spec.url(s))
        held = set(tokens.roles()) & spec.roles
        if held:
            return Choice(spec.api, spec.auto_reason.format(roles=", ".join(sorted(held))),
                          warning=spec.online_warning, tokens=tokens)
        first = first or Choice(spec.api, "", tokens=tokens)
    assert first is not None  # SOURCES is never empty
    # No role in either token: either nothing is granted yet, or Exchange Online RBAC for
    # Applications grants Contacts.Read inside Exchange, which tokens do not show. Graph is
    # the only API with a future; a missing grant shows up per mailbox as "access denied".
    first.reason = ("api=auto and the token carries no roles (none granted in Entra; "
                    "RBAC for Applications grants are not visible in tokens)")
    first.warning = ("the app's token holds neither Contacts.Read nor full_access_as_app: "
                     "if no RBAC for Applications role assignment grants Contacts.Read, add "
                     "the application permission Microsoft Graph > Contacts.Read with admin "
                     "consent")
    return first


def open_source(s: Settings, choice: Choice, include_subfolders: bool = True) -> ContactSource:
    cls = SOURCES[choice.api].load()
    return cls(s, tokens=choice.tokens, include_subfolders=include_subfolders)
