"""What every subcommand needs: the database and the settings."""

from __future__ import annotations

import argparse

from .. import db as dbmod
from .. import logs, settings, settings_store
from ..db import Database


def open_db(args: argparse.Namespace, schema: bool = True) -> Database:
    url = dbmod.resolve_url(args.db)
    database = Database(url)
    if schema:
        dbmod.require_schema(database.engine)
    else:
        dbmod.check_connection(database.engine)
    return database


def load_settings(database: Database) -> settings.Settings:
    with database.session() as s:
        conf = settings_store.load(s)
    for secret in conf.secrets:
        logs.register_secret(secret)
    return conf
