"""The UC server's side: users, groups, key-value store and phonebooks (SQLAlchemy 2 ORM).

Text columns have fixed lengths so that SQLite, MariaDB and PostgreSQL behave alike: a value
longer than its column is rejected here with ``ValueError`` (SQLite would store it, MariaDB
and PostgreSQL would fail late and differently). Sources cut over-long contact fields to
these lengths before they reach the model (see ``phonebook.entry_values``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from .ownership import Origin

# Binary collation on MariaDB: titles "Müller" and "Muller" are different phonebooks, like on
# the other two databases; utf8mb4 so that emoji survive.
MYSQL_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}

NAME_LEN = 255
EMAIL_LEN = 320
NUMBER_LEN = 64
ID_LEN = 512

SOURCE_KINDS = tuple(o.value for o in Origin)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


_V = TypeVar("_V")


def table_of(cls: type[Base]) -> Table:
    """The Core table of a mapped class (``__table__`` is declared as any FromClause)."""
    table = cls.__table__
    assert isinstance(table, Table)
    return table


def _check_len(obj: Any, key: str, value: _V) -> _V:
    col = obj.__table__.c[key]
    limit = getattr(col.type, "length", None)
    if isinstance(value, str) and limit is not None and len(value) > limit:
        raise ValueError(f"{obj.__tablename__}.{key} is longer than {limit} characters")
    return value


class User(Base):
    __tablename__ = "users"
    __table_args__ = (MYSQL_ARGS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # As typed by the admin; email_key (lower-cased) is what makes it unique and findable.
    email: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    email_key: Mapped[str | None] = mapped_column(String(EMAIL_LEN), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), default="")

    memberships: Mapped[list[GroupMember]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )
    phonebooks: Mapped[list[Phonebook]] = relationship(
        back_populates="owner", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("email")
    def _email(self, key: str, value: str | None) -> str | None:
        value = (value or "").strip() or None
        _check_len(self, key, value)
        self.email_key = value.lower() if value else None
        return value

    @validates("name")
    def _name(self, key: str, value: str) -> str:
        return _check_len(self, key, value)


class UserGroup(Base):
    __tablename__ = "user_groups"
    __table_args__ = (MYSQL_ARGS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)

    members: Mapped[list[GroupMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )
    params: Mapped[list[GroupParam]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("name")
    def _name(self, key: str, value: str) -> str:
        return _check_len(self, key, value)


class GroupMember(Base):
    __tablename__ = "group_members"
    __table_args__ = (MYSQL_ARGS,)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    group: Mapped[UserGroup] = relationship(back_populates="members")
    user: Mapped[User] = relationship(back_populates="memberships")


class GroupParam(Base):
    __tablename__ = "group_params"
    __table_args__ = (UniqueConstraint("group_id", "name"), MYSQL_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("user_groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    value: Mapped[str] = mapped_column(String(NAME_LEN), default="")

    group: Mapped[UserGroup] = relationship(back_populates="params")

    @validates("name", "value")
    def _len(self, key: str, value: str) -> str:
        return _check_len(self, key, value)


class KeyValue(Base):
    """The server's key-value store; this module uses namespace ``contactsync``."""

    __tablename__ = "kv_store"
    __table_args__ = (UniqueConstraint("namespace", "key"), MYSQL_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(Text, default="")

    @validates("namespace", "key")
    def _len(self, key: str, value: str) -> str:
        return _check_len(self, key, value)


class Phonebook(Base):
    __tablename__ = "phonebooks"
    __table_args__ = (UniqueConstraint("owner_id", "title"), MYSQL_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None: a shared (company) phonebook every user sees.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(NAME_LEN))
    # Who keeps this phonebook current: an ownership.Origin value.
    source: Mapped[str] = mapped_column(String(16), default="manual")
    # Shared phonebooks: the mailbox (shared-mailbox) and folder path (shared-mailbox: a folder
    # below Contacts, public-folder: the path below the public folder root) they are read from.
    mailbox: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    folder: Mapped[str | None] = mapped_column(String(NAME_LEN))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    owner: Mapped[User | None] = relationship(back_populates="phonebooks")
    entries: Mapped[list[Entry]] = relationship(
        back_populates="phonebook",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Entry.id",
    )

    @validates("title")
    def _title(self, key: str, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("phonebook title must not be empty")
        return _check_len(self, key, value)

    @validates("mailbox", "folder")
    def _where(self, key: str, value: str | None) -> str | None:
        return _check_len(self, key, value)

    @validates("source")
    def _source(self, key: str, value: str) -> str:
        if value not in SOURCE_KINDS:
            raise ValueError(f"phonebook source must be one of {', '.join(SOURCE_KINDS)}")
        return value


class Entry(Base):
    """A phonebook entry. ``source_id`` None = typed in by the user: no import touches it."""

    __tablename__ = "phonebook_entries"
    __table_args__ = (
        UniqueConstraint("phonebook_id", "origin", "source_id"),
        MYSQL_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phonebook_id: Mapped[int] = mapped_column(ForeignKey("phonebooks.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    given_name: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    surname: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    company: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    department: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    job_title: Mapped[str] = mapped_column(String(NAME_LEN), default="")
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Where the entry came from: ownership.Origin.entry_origin (None: typed by hand).
    origin: Mapped[str | None] = mapped_column(String(16))
    source_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    change_key: Mapped[str | None] = mapped_column(String(ID_LEN))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    phonebook: Mapped[Phonebook] = relationship(back_populates="entries")
    numbers: Mapped[list[Number]] = relationship(
        back_populates="entry",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Number.position",
    )

    @validates(
        "display_name", "given_name", "surname", "company", "department", "job_title",
        "source_id", "change_key",
    )
    def _len(self, key: str, value: str | None) -> str | None:
        return _check_len(self, key, value)


class Number(Base):
    __tablename__ = "phone_numbers"
    __table_args__ = (Index("ix_phone_numbers_e164", "e164"), MYSQL_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("phonebook_entries.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    type: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(NUMBER_LEN))  # as written
    e164: Mapped[str | None] = mapped_column(String(NUMBER_LEN))

    entry: Mapped[Entry] = relationship(back_populates="numbers")

    @validates("number", "type")
    def _len(self, key: str, value: str) -> str:
        return _check_len(self, key, value)


class SyncState(Base):
    """Where the next incremental read starts: EWS SyncState or Graph deltaLink per folder.

    Keyed by everything it describes: the phonebook it was written into, the mailbox address
    it was read from, the API and the folder. A state whose phonebook, mailbox or API differs
    from the run's is never used (the run reads that mailbox in full) and is dropped with the
    next successful write.
    """

    __tablename__ = "sync_states"
    # The mailbox is not part of the unique key (MariaDB's 3072-byte key limit); one
    # phonebook follows one mailbox per API, and a write replaces all of its states.
    __table_args__ = (UniqueConstraint("phonebook_id", "api", "folder_id"), MYSQL_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phonebook_id: Mapped[int] = mapped_column(ForeignKey("phonebooks.id", ondelete="CASCADE"))
    mailbox: Mapped[str] = mapped_column(String(EMAIL_LEN))  # lower-cased SMTP address
    api: Mapped[str] = mapped_column(String(16))  # ews | graph
    folder_id: Mapped[str] = mapped_column(String(ID_LEN))
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# An entry as JSON text (see history.py): MEDIUMTEXT on MariaDB, whose TEXT ends at 64 KB.
SNAPSHOT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class Run(Base):
    """One run that wrote (sync, import, undo): created with its first change, in the same
    transaction; ``outcome`` stays "incomplete" if the process dies before it ends."""

    __tablename__ = "history_runs"
    __table_args__ = (MYSQL_ARGS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    command: Mapped[str] = mapped_column(String(NAME_LEN))
    api: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(NAME_LEN * 2), default="incomplete")


class Change(Base):
    """One entry a run added, updated or removed, with the whole entry before and after.
    Owner and title are copies: the history outlives renamed or deleted phonebooks."""

    __tablename__ = "history_changes"
    __table_args__ = (MYSQL_ARGS,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("history_runs.id", ondelete="CASCADE"),
                                        index=True)
    phonebook_id: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(EMAIL_LEN))
    phonebook: Mapped[str] = mapped_column(String(NAME_LEN))
    action: Mapped[str] = mapped_column(String(8))  # added | updated | removed
    entry_id: Mapped[int] = mapped_column(Integer)
    before: Mapped[str | None] = mapped_column(SNAPSHOT)
    after: Mapped[str | None] = mapped_column(SNAPSHOT)
