"""The keys of the key-value store, their validation, and the typed ``Settings`` value.

No database here: :mod:`settings_store` reads and writes the store; sources and the sync
engine only see ``Settings``. Each key's default is written once, in ``KEYS``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .errors import ConfigError
from .phone import clean_area_code, is_region

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
    from .sources.registry import SOURCES  # here: the sources import this module

    low = v.strip().lower()
    if low == "auto" or low in SOURCES:
        return low
    raise ValueError(f"must be auto, {', '.join(list(SOURCES)[:-1])} or {list(SOURCES)[-1]}")


def _https(v: str) -> str:
    parts = urlsplit(v.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    _plain_origin(v, parts)
    return v.strip().rstrip("/")


def _plain_origin(v: str, parts: SplitResult) -> None:
    """No user info, query, fragment or bad port in a service URL: they would be sent
    somewhere (user info as Basic credentials) or silently dropped."""
    if parts.username is not None or "@" in parts.netloc:
        raise ValueError("must not contain user@ (credentials belong in their own keys)")
    if "?" in v:
        raise ValueError("must not contain a query (?...)")
    if "#" in v:
        raise ValueError("must not contain a fragment (#...)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port: use a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has an invalid port: use a number from 1 to 65535")


def _ews_url(v: str) -> str:
    """An https URL; a bare host name (what admins type for their Exchange server) becomes
    ``https://host/EWS/Exchange.asmx``."""
    v = v.strip()
    url = _https(v if "://" in v else f"https://{v}")
    return url + "/EWS/Exchange.asmx" if urlsplit(url).path in ("", "/") else url


def _file(v: str) -> str:
    if not v:
        return v
    if not os.path.isfile(v):
        raise ValueError(f"file {v} does not exist; give the path of a PEM CA file")
    _has_certificate(v)
    return v


def _has_certificate(path: str) -> None:
    """At least one PEM certificate that OpenSSL loads (what requests will do with it)."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, UnicodeDecodeError):
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
                         "give the CA certificate in PEM format") from None


def _region(v: str) -> str:
    if is_region(v):
        return v.upper()
    raise ValueError("must be a two-letter region code such as DE, AT or CH")


def _area_code(v: str) -> str:
    return clean_area_code(v) if v else v


def _digits(v: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and "٣", which int() refuses."""
    return v.isascii() and v.isdigit()


def _workers(v: str) -> str:
    if _digits(v) and 1 <= int(v) <= 32:
        return v
    raise ValueError("must be a whole number from 1 to 32")


def _percent(v: str) -> str:
    if _digits(v) and 0 <= int(v) <= 100:
        return str(int(v))
    raise ValueError("must be a whole number from 0 to 100 (percent)")


def _days(v: str) -> str:
    if _digits(v) and int(v) <= 3650:
        return str(int(v))
    raise ValueError("must be a whole number of days from 0 (keep no history) to 3650")


def _title(v: str) -> str:
    from .phonebook import clean_title  # control characters go, as in entry text

    v = clean_title(v)
    if not v:
        raise ValueError("must not be empty")
    if len(v) > 255:
        raise ValueError("must be at most 255 characters")
    return v


def _any(v: str) -> str:
    return v


def _true(v: str) -> bool:
    return v == "true"


def _optional_title(v: str) -> str:
    return _title(v) if v.strip() else ""


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    check: Callable[[str], str]  # normalised text, or ValueError saying what is allowed
    help: str
    parse: Callable[[str], Any] = str  # normalised text -> the value in ``Settings``


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("tenant_id", "", _tenant, "Directory (tenant) ID of the Entra app"),
        Key("client_id", "", _guid, "Application (client) ID of the Entra app"),
        Key("client_secret", "", _any, "client secret value of the Entra app"),
        Key("phonebookname", "Privat", _title, "title of the synced phonebook"),
        Key("office365", "true", _bool, "true: Exchange Online; false: on-premises Exchange",
            _true),
        Key("api", "auto", _api, "auto or a source of sources/registry.py"),
        Key("login_url", "https://login.microsoftonline.com", _https, "Entra login endpoint"),
        Key("graph_url", "https://graph.microsoft.com", _https, "Microsoft Graph endpoint"),
        Key("ews_url", "https://outlook.office365.com/EWS/Exchange.asmx", _ews_url, "EWS URL"),
        Key("ews_username", "", _any, "on-premises service account (DOMAIN\\user or UPN)"),
        Key("ews_password", "", _any, "password of the on-premises service account"),
        Key("ca_bundle", "", _file, "PEM file of a private CA to trust for TLS"),
        Key("default_region", "DE", _region, "region for numbers without country code"),
        Key("area_code", "", _area_code, "the site's area code (e.g. 89) for local numbers"),
        Key("max_workers", "8", _workers, "mailboxes read in parallel", int),
        Key("subfolders", "true", _bool, "also read the subfolders of the Contacts folder",
            _true),
        Key("guard_percent", "50", _percent, "share of a synced phonebook a run may remove "
            "without --force", int),
        Key("history_days", "30", _days, "days the run history is kept (0: keep none)",
            int),
        Key("directory_phonebook", "", _optional_title,
            "title of the company directory phonebook (empty: none)"),
        Key("directory_orgcontacts", "false", _bool,
            "also put the tenant's mail contacts into the directory phonebook", _true),
        Key("directory_group", "", _any,
            "only members of this Entra group (object id or name) in the directory phonebook"),
    )
}


def _default(name: str) -> Any:
    spec = KEYS[name]
    return spec.parse(spec.default)


@dataclass(frozen=True)
class Settings:
    tenant_id: str = _default("tenant_id")
    client_id: str = _default("client_id")
    client_secret: str = _default("client_secret")
    phonebookname: str = _default("phonebookname")
    office365: bool = _default("office365")
    api: str = _default("api")
    login_url: str = _default("login_url")
    graph_url: str = _default("graph_url")
    ews_url: str = _default("ews_url")
    ews_username: str = _default("ews_username")
    ews_password: str = _default("ews_password")
    ca_bundle: str = _default("ca_bundle")
    default_region: str = _default("default_region")
    area_code: str = _default("area_code")
    max_workers: int = _default("max_workers")
    subfolders: bool = _default("subfolders")
    guard_percent: int = _default("guard_percent")
    history_days: int = _default("history_days")
    directory_phonebook: str = _default("directory_phonebook")
    directory_orgcontacts: bool = _default("directory_orgcontacts")
    directory_group: str = _default("directory_group")

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


def from_raw(raw: Mapping[str, str]) -> Settings:
    """The typed settings from the stored texts; a key not stored (or empty) is its default."""
    values: dict[str, Any] = {}
    for name, spec in KEYS.items():
        text = raw.get(name, "")
        values[name] = spec.parse(validate(name, text) if text != "" else spec.default)
    return Settings(**values)


def listing(raw: Mapping[str, str]) -> list[tuple[str, str, bool]]:
    """(key, value shown, is_default) for every known key; secrets masked."""
    out = []
    for name, spec in KEYS.items():
        value = raw.get(name, "")
        is_default = value == ""
        shown = MASK if (name in SECRET_KEYS and value) else (value or spec.default)
        out.append((name, shown, is_default))
    return out
