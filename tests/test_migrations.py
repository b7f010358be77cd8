"""The Alembic schema equals the ORM model on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ucware_contactsync import db as dbmod
from ucware_contactsync.model import Base


def test_schema_matches_model(db_url):
    engine = dbmod.make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent(db_url):
    engine = dbmod.make_engine(db_url)
    assert dbmod.upgrade(engine) == dbmod.upgrade(engine) == "0004"
    engine.dispose()


def test_upgrade_recomputes_guessed_e164_and_keeps_numbers(database, db_url):
    """A database written by the version before 0002 (E.164 for merely possible numbers and
    for local numbers without trunk prefix) gets today's E.164; nothing else changes."""
    from alembic import command
    from sqlalchemy import select

    from ucware_contactsync.model import Entry, Number, Phonebook, User

    old = [("91551000", "+4991551000"), ("+1-555-0123", "+15550123"),
           ("089 123456 App. 17", "+498912345627717"), ("089 123456", "+4989123456")]
    engine = dbmod.make_engine(db_url)
    command.downgrade(dbmod._alembic_config(engine), "0001")  # the schema of version 0001
    with database.session() as s:  # what version 0001 wrote
        book = Phonebook(owner=User(email="a@contoso.de"), title="Kunden", source="csv")
        s.add(Entry(phonebook=book, display_name="Ola", origin="csv", source_id="x",
                    numbers=[Number(position=i, type="business", number=n, e164=e)
                             for i, (n, e) in enumerate(old)]))
    command.upgrade(dbmod._alembic_config(engine), "head")
    engine.dispose()
    with database.session() as s:
        rows = s.execute(select(Number.number, Number.e164).order_by(Number.position)).all()
    assert [tuple(r) for r in rows] == [("91551000", None), ("+1-555-0123", None),
                                        ("089 123456 App. 17", "+4989123456"),
                                        ("089 123456", "+4989123456")]
