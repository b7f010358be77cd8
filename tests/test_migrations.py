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
    assert dbmod.upgrade(engine) == dbmod.upgrade(engine) == "0005"
    engine.dispose()


def test_upgrade_from_0001_keeps_phonebooks(db_url):
    """A database synced by the first release upgrades to shared phonebooks with nothing lost."""
    from alembic import command
    from sqlalchemy import text

    engine = dbmod.make_engine(db_url)
    cfg = dbmod._alembic_config(engine)
    command.downgrade(cfg, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, email_key, name) "
                          "VALUES (1, 'a@contoso.de', 'a@contoso.de', 'A')"))
        conn.execute(text("INSERT INTO phonebooks (id, owner_id, title, source, created_at, "
                          "updated_at) VALUES (1, 1, 'Privat', 'office365', "
                          "'2026-11-01 00:00:00', '2026-11-01 00:00:00')"))
        conn.execute(text("INSERT INTO phonebook_entries (id, phonebook_id, display_name, "
                          "given_name, surname, company, department, job_title, emails, "
                          "categories, origin, source_id, created_at, updated_at) VALUES "
                          "(1, 1, 'Ola', '', '', '', '', '', '[]', '[]', 'office365', 'x', "
                          "'2026-11-01 00:00:00', '2026-11-01 00:00:00')"))
    assert dbmod.upgrade(engine) == "0005"
    with engine.begin() as conn:
        # SQLite rebuilds ``phonebooks``: its entries must not go with the old table
        assert conn.execute(text("SELECT display_name FROM phonebook_entries")).all() == [
            ("Ola",)]
        assert conn.execute(text("SELECT owner_id, title, source, mailbox FROM phonebooks")
                            ).all() == [(1, "Privat", "office365", None)]
        conn.execute(text("INSERT INTO phonebooks (id, owner_id, title, source, created_at, "
                          "updated_at) VALUES (2, NULL, 'Firma', 'directory', "
                          "'2026-11-01 00:00:00', '2026-11-01 00:00:00')"))
    engine.dispose()


def test_upgrade_recomputes_guessed_e164_and_keeps_numbers(database, db_url):
    """A database written by the version before 0002 (E.164 for merely possible numbers and
    for local numbers without trunk prefix) gets today's E.164; nothing else changes."""
    from alembic import command
    from sqlalchemy import select

    from ucware_contactsync.model import Entry, Number, Phonebook, User

    old = [("91551000", "+4991551000"), ("+1-555-0123", "+15550123"),
           ("089 123456 App. 17", "+498912345627717"), ("089 123456", "+4989123456")]
    with database.session() as s:  # what version 0001 wrote (the model's columns since
        # then are all nullable and empty here, so the downgrade below keeps every row)
        book = Phonebook(owner=User(email="a@contoso.de"), title="Kunden", source="csv")
        s.add(Entry(phonebook=book, display_name="Ola", origin="csv", source_id="x",
                    numbers=[Number(position=i, type="business", number=n, e164=e)
                             for i, (n, e) in enumerate(old)]))
    engine = dbmod.make_engine(db_url)
    command.downgrade(dbmod._alembic_config(engine), "0001")  # the schema of version 0001
    command.upgrade(dbmod._alembic_config(engine), "head")
    engine.dispose()
    with database.session() as s:
        rows = s.execute(select(Number.number, Number.e164).order_by(Number.position)).all()
    assert [tuple(r) for r in rows] == [("91551000", None), ("+1-555-0123", None),
                                        ("089 123456 App. 17", "+4989123456"),
                                        ("089 123456", "+4989123456")]
