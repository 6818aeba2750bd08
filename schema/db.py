"""Engines and sessions, the same for both services, the CLI and the worker."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

# psycopg prepares a statement on the server after a few runs of it and then refers to it by
# name. Behind PgBouncer in transaction mode the next transaction may be on another server
# connection, where that name means nothing or another statement: errors, or wrong rows.
# Unnamed statements are correct everywhere; what they cost on a direct connection is in
# docs/performance.md.
PSYCOPG_CONNECT_ARGS: dict[str, Any] = {"prepare_threshold": None}


def normalize_url(url: str) -> str:
    """Let a plain `postgresql://` URL use psycopg 3, the one driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    """Whether the URL names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_options(
    url: str, pool_size: int = 10, max_overflow: int = 0, pool_timeout: float = 5.0
) -> dict[str, Any]:
    """Keyword arguments for `create_engine` (Flask-SQLAlchemy takes the same ones).

    `hide_parameters`: a failed statement's error (and so any log of it) never carries the
    values it was sent with, which may be a password hash or a sealed key.
    """
    if is_sqlite(url):
        return {
            "connect_args": {"check_same_thread": False, "timeout": 10},
            "hide_parameters": True,
        }
    return {
        "hide_parameters": True,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": pool_timeout,
        # No pre-ping: it costs a round trip on every checkout. A connection that died (database
        # restart) fails its next statement instead; SQLAlchemy then discards the whole pool
        # and that one request gets 503 with Retry-After.
        "pool_recycle": 1800,
        "connect_args": dict(PSYCOPG_CONNECT_ARGS),
    }


def install_sqlite_pragmas(engine: Engine) -> None:
    """Apply the SQLite pragmas on every new connection of this engine."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)


def prepare_sqlite_file(url: str) -> None:
    """Create an SQLite database file (and its directory) readable by its owner only.

    SQLite would create it with the umask's mode (often world-readable); its journal
    files take the database file's mode, so they are private too.
    """
    if not is_sqlite(url):
        return
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def make_engine(url: str, **pool: Any) -> Engine:
    """An engine for the URL, with the pragmas or pool settings that fit its backend."""
    url = normalize_url(url)
    prepare_sqlite_file(url)
    engine = create_engine(url, **engine_options(url, **pool))
    install_sqlite_pragmas(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit, so replies can be built from them."""
    return sessionmaker(engine, expire_on_commit=False)
