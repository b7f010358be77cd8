"""Alembic environment: the engine comes from ``db.upgrade`` (config.attributes["engine"])."""

from alembic import context

from ucware_contactsync.model import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from ucware_contactsync.db import make_engine, resolve_url

        engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by copying it and dropping the old one (batch mode); with
            # foreign keys on, that drop would cascade into every row pointing at the table
            # (altering ``phonebooks`` would delete all entries). Off outside the transaction,
            # where SQLite honours it, and on again afterwards.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                context.configure(
                    connection=connection,
                    target_metadata=target_metadata,
                    render_as_batch=sqlite,
                    compare_type=True,
                )
                context.run_migrations()
        finally:
            if sqlite:
                connection.rollback()  # nothing open after a commit; after a failure, undo
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


run_migrations_online()
