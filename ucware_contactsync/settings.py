"""Settings from the key-value store (namespace ``contactsync``) into one typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .errors import ConfigError
from .model import KeyValue
from .phone import is_region

NAMESPACE = "contactsync"
SECRET_KEYS = frozenset({"client_secret", "ews_password"})
MASK = "********"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)+[a-zA-Z]{2,63}$")
TRUE = {"true", "yes", "1", "on"}
FALSE = {"false", "no", "0", "off"}


def _tenant(v: str) -> str:
    if _GUID.match(v) or _DOMAIN.match(v) or v in ("common", "organizations"):
        return v
    raise ValueError("must be the Directory (tenant) ID, a GUID like "
                     "11111111-2222-3333-4444-555555555555, or the tenant's domain")


def _guid(v: str) -> str:
    if _GUID.match(v):
        return v
    raise ValueError("must be the Application (client) ID, a GUID like "
                     "11111111-2222-3333-4444-555555555555")


def _bool(v: str) -> str:
    low = v.strip().lower()
    if low in TRUE:
        return "true"
    if low in FALSE:
        return "false"
    raise ValueError("must be true or false")


def _api(v: str) -> str:
    low = v.strip().lower()
    if low in ("auto", "graph", "ews"):
        return low
    raise ValueError("must be auto, graph or ews")


def _https(v: str) -> str:
    parts = urlsplit(v.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    return v.strip().rstrip("/")


def _file(v: str) -> str:
    if not v:
        return v
    if not os.path.isfile(v):
        raise ValueError(f"file {v} does not exist; give the path of a PEM CA file")
    return v


def _region(v: str) -> str:
    if is_region(v):
        return v.upper()
    raise ValueError("must be a two-letter region code such as DE, AT or CH")


def _workers(v: str) -> str:
    if v.isdigit() and 1 <= int(v) <= 32:
        return v
    raise ValueError("must be a whole number from 1 to 32")


def _title(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    if len(v) > 255:
        raise ValueError("must be at most 255 characters")
    return v


def _any(v: str) -> str:
    return v


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    check: Callable[[str], str]
    help: str


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("tenant_id", "", _tenant, "Directory (tenant) ID of the Entra app"),
        Key("client_id", "", _guid, "Application (client) ID of the Entra app"),
        Key("client_secret", "", _any, "client secret value of the Entra app"),
        Key("phonebookname", "Privat", _title, "title of the synced phonebook"),
        Key("office365", "true", _bool, "true: Exchange Online; false: on-premises Exchange"),
        Key("api", "auto", _api, "auto, graph or ews"),
        Key("login_url", "https://login.microsoftonline.com", _https, "Entra login endpoint"),
        Key("graph_url", "https://graph.microsoft.com", _https, "Microsoft Graph endpoint"),
        Key("ews_url", "https://outlook.office365.com/EWS/Exchange.asmx", _https, "EWS URL"),
        Key("ews_username", "", _any, "on-premises service account (DOMAIN\\user or UPN)"),
        Key("ews_password", "", _any, "password of the on-premises service account"),
        Key("ca_bundle", "", _file, "PEM file of a private CA to trust for TLS"),
        Key("default_region", "DE", _region, "region for numbers without country code"),
        Key("max_workers", "8", _workers, "mailboxes read in parallel"),
        Key("subfolders", "true", _bool, "also read the subfolders of the Contacts folder"),
    )
}


@dataclass(frozen=True)
class Settings:
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    phonebookname: str = "Privat"
    office365: bool = True
    api: str = "auto"
    login_url: str = KEYS["login_url"].default
    graph_url: str = KEYS["graph_url"].default
    ews_url: str = KEYS["ews_url"].default
    ews_username: str = ""
    ews_password: str = ""
    ca_bundle: str = ""
    default_region: str = "DE"
    max_workers: int = 8
    subfolders: bool = True

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.client_secret, self.ews_password) if s]

    @property
    def verify(self) -> str:
        """What ``requests`` gets as ``verify``: the private CA when set, else the default
        store as a path. Never ``True``: requests would then trust $REQUESTS_CA_BUNDLE or
        $CURL_CA_BUNDLE instead, and only ``ca_bundle`` may change what is trusted."""
        if self.ca_bundle:
            return self.ca_bundle
        from requests.utils import DEFAULT_CA_BUNDLE_PATH

        return DEFAULT_CA_BUNDLE_PATH

    def __repr__(self) -> str:  # never print secrets, also not by accident
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in SECRET_KEYS:
            if shown.get(key):
                shown[key] = MASK
        return f"Settings({shown})"


def validate(key: str, value: str) -> str:
    """Normalised value, or ConfigError naming the key and the fix."""
    spec = KEYS.get(key)
    if spec is None:
        raise ConfigError(f"unknown key {key!r}", f"known keys: {', '.join(KEYS)}")
    try:
        return spec.check(value.strip() if key not in SECRET_KEYS else value)
    except ValueError as exc:
        raise ConfigError(
            f"invalid value for key {key!r}: {exc}",
            f"fix it with 'ucware-contactsync config set {key} VALUE'",
        ) from None


def read_raw(session: Session) -> dict[str, str]:
    rows = session.scalars(select(KeyValue).where(KeyValue.namespace == NAMESPACE))
    return {r.key: r.value for r in rows}


def load(session: Session) -> Settings:
    raw = read_raw(session)
    values: dict[str, object] = {}
    for name, spec in KEYS.items():
        text = raw.get(name, "")
        value = validate(name, text) if text != "" else spec.default
        values[name] = value
    values["office365"] = values["office365"] == "true"
    values["subfolders"] = values["subfolders"] == "true"
    values["max_workers"] = int(str(values["max_workers"]))
    return Settings(**values)  # type: ignore[arg-type]


def set_value(session: Session, key: str, value: str) -> str:
    value = validate(key, value)
    row = session.scalar(
        select(KeyValue).where(KeyValue.namespace == NAMESPACE, KeyValue.key == key)
    )
    if row is None:
        session.add(KeyValue(namespace=NAMESPACE, key=key, value=value))
    else:
        row.value = value
    return value


def reset(session: Session, key: str) -> None:
    if key not in KEYS:
        validate(key, "")  # raises "unknown key"
    session.execute(
        delete(KeyValue).where(KeyValue.namespace == NAMESPACE, KeyValue.key == key)
    )


def listing(session: Session) -> list[tuple[str, str, bool]]:
    """(key, value shown, is_default) for every known key; secrets masked."""
    raw = read_raw(session)
    out = []
    for name, spec in KEYS.items():
        value = raw.get(name, "")
        is_default = value == ""
        shown = MASK if (name in SECRET_KEYS and value) else (value or spec.default)
        out.append((name, shown, is_default))
    return out
