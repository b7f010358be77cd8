"""What the subcommands share: the database, the settings and the chosen source."""

from __future__ import annotations

import argparse

from .. import db as dbmod
from .. import logs, settings, settings_store
from ..db import Database
from ..sources import Choice, ContactSource, choose, open_source


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


def chosen_source(conf: settings.Settings) -> tuple[Choice, ContactSource]:
    """The API to use (key ``api``, the token's roles) and its source; a ``SourceError``
    here ends the command (exit 2 for bad app credentials, else 1)."""
    choice = choose(conf)
    return choice, open_source(conf, choice, include_subfolders=conf.subfolders)
