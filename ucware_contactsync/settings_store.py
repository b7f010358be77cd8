"""Reading and writing the settings in the key-value store (namespace ``contactsync``).

The keys, their validation and the typed value live in :mod:`settings`, which needs no
database; this module is the only one that touches the ``kv`` table for settings.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import settings
from .model import KeyValue
from .settings import Settings

NAMESPACE = "contactsync"


def read_raw(session: Session) -> dict[str, str]:
    rows = session.scalars(select(KeyValue).where(KeyValue.namespace == NAMESPACE))
    return {r.key: r.value for r in rows}


def load(session: Session) -> Settings:
    return settings.from_raw(read_raw(session))


def set_value(session: Session, key: str, value: str) -> str:
    value = settings.validate(key, value)
    row = session.scalar(
        select(KeyValue).where(KeyValue.namespace == NAMESPACE, KeyValue.key == key)
    )
    if row is None:
        session.add(KeyValue(namespace=NAMESPACE, key=key, value=value))
    else:
        row.value = value
    return value


def reset(session: Session, key: str) -> None:
    if key not in settings.KEYS:
        settings.validate(key, "")  # raises "unknown key"
    session.execute(
        delete(KeyValue).where(KeyValue.namespace == NAMESPACE, KeyValue.key == key)
    )


def listing(session: Session) -> list[tuple[str, str, bool]]:
    """(key, value shown, is_default) for every known key; secrets masked."""
    return settings.listing(read_raw(session))
