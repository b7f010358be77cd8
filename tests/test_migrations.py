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
    assert dbmod.upgrade(engine) == dbmod.upgrade(engine) == "0001"
    engine.dispose()
