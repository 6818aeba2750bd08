"""Alembic environment: one tree for both services, driven by Flask-Migrate or `ca-admin`."""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from schema.db import make_engine, normalize_url
from schema.models import Base
from schema.settings import CommonSettings

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    try:  # under `flask db ...`, the app's configured database
        from flask import current_app

        return str(current_app.extensions["migrate"].db.engine.url.render_as_string(False))
    except (ImportError, RuntimeError, KeyError):
        return CommonSettings().effective_direct_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite can only ALTER by copying the table
        compare_type=True,
        compare_server_default=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_database_url()),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
