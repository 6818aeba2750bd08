"""The async statement layer on PostgreSQL: commits that are commits, UTC times, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
import pytest
from sqlalchemy import DateTime, bindparam, create_engine, func, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from certificate_api.database import PostgresDatabase
from core.statements import Query
from schema.db import normalize_url
from schema.events import WebhookEndpoint
from tests.conftest import THROUGH_POOLER, Databases, postgres_only

pytestmark = postgres_only

ADD_ENDPOINT = insert(WebhookEndpoint).values(url=bindparam("address"))


class Count(NamedTuple):
    n: int


class Now(NamedTuple):
    now: datetime


NOW = Query(select(func.now(type_=DateTime(timezone=True)).label("now")), Now)


ENDPOINTS = Query(
    select(func.count().label("n"))
    .select_from(WebhookEndpoint)
    .where(WebhookEndpoint.url.startswith(bindparam("prefix"))),
    Count,
)


def run(work: Any) -> Any:
    return asyncio.run(work)


def test_a_transaction_whose_statement_failed_does_not_pass_for_committed(
    database_url: str,
) -> None:
    prefix = f"https://{uuid.uuid4().hex}.example/"

    async def work() -> int:
        db = PostgresDatabase(database_url, size=2, timeout=5)
        await db.open()
        try:
            with pytest.raises(sa_exc.OperationalError):
                async with db.transaction() as tx:
                    await tx.execute(ADD_ENDPOINT, address=prefix + "a")
                    await tx.execute(ADD_ENDPOINT, address=prefix + "a")
                    # Sending fails on the duplicate; swallowed, the block ends as if all went well.
                    with contextlib.suppress(sa_exc.IntegrityError):
                        await tx.one(ENDPOINTS, prefix=prefix)
            count: int = (await db.one(ENDPOINTS, prefix=prefix))[0]
            async with db.transaction() as tx:  # the connection is usable afterwards
                await tx.execute(ADD_ENDPOINT, address=prefix + "b")
            return count + (await db.one(ENDPOINTS, prefix=prefix))[0]
        finally:
            await db.close()

    assert run(work()) == 0 + 1


def test_times_read_as_utc_without_touching_the_session(databases: Databases) -> None:
    """Behind a pooler the session is shared: the layer reads times as UTC whatever the
    server's TimeZone, and sets nothing on the session (no startup `options`, no SET)."""
    url = databases.create(migrate=False)
    name = make_url(url).database
    admin = create_engine(normalize_url(databases.direct(url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'"))
    admin.dispose()

    async def work() -> tuple[Any, str, str]:
        db = PostgresDatabase(url + "?application_name=tessera-zone-test", 1, 5)
        await db.open()
        try:
            moment = (await db.one(NOW))[0]
            async with db.pool.connection() as conn:
                row = await (
                    await conn.execute("SELECT current_setting('application_name'), now()::text")
                ).fetchone()
            assert row is not None
            return moment, row[0], row[1]
        finally:
            await db.close()

    moment, application, server_text = run(work())
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as plain:  # the zone a session has when nobody sets one
        untouched = plain.execute("SELECT now()::text").fetchone()
    assert untouched is not None
    assert moment.utcoffset() == timedelta(0)
    assert application == "tessera-zone-test"  # the URL's own parameters are kept
    assert server_text[-3:] == untouched[0][-3:]  # the session's zone was left alone


@pytest.mark.skipif(
    THROUGH_POOLER, reason="a pooler keeps client connections across a server restart"
)
def test_connections_cut_by_a_restart_are_replaced(database_url: str) -> None:
    """A restart closes every pooled connection: the request that finds out gets an error
    (the service answers 503); the pool then tests its idle connections, and the next
    requests get live ones."""
    name = f"tessera-restart-{uuid.uuid4().hex[:8]}"

    async def work() -> list[str]:
        db = PostgresDatabase(database_url + f"?application_name={name}", size=3, timeout=5)
        await db.open()
        await db.pool.wait()
        outcomes = []
        try:
            admin = create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                killed = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": name},
                ).scalar_one()
            admin.dispose()
            assert killed >= 2
            for _ in range(4):
                try:
                    await db.one(ENDPOINTS, prefix="x")
                    outcomes.append("ok")
                except sa_exc.OperationalError:
                    outcomes.append("error")
                    for _ in range(100):  # the pool's check of its idle connections
                        await asyncio.sleep(0.05)
                        if db.checking is None:
                            break
            return outcomes
        finally:
            await db.close()

    assert run(work()) == ["error", "ok", "ok", "ok"]


def test_after_commit_work_runs_once_committed_and_never_after_a_rollback(
    database_url: str,
) -> None:
    prefix = f"https://{uuid.uuid4().hex}.example/"
    ran: list[str] = []

    async def work() -> None:
        db = PostgresDatabase(
            database_url, size=1, timeout=5, wake_workers=lambda: ran.append("wake")
        )
        await db.open()
        try:
            async with db.transaction() as tx:
                await tx.execute(ADD_ENDPOINT, address=prefix + "a")
                tx.after_commit(lambda: ran.append("committed"))
                tx.events_recorded()
                tx.events_recorded()  # once per transaction, however many events
                assert ran == []  # nothing before the commit
            with contextlib.suppress(RuntimeError):
                async with db.transaction() as tx:
                    await tx.execute(ADD_ENDPOINT, address=prefix + "b")
                    tx.after_commit(lambda: ran.append("rolled back"))
                    tx.events_recorded()
                    raise RuntimeError("the request fails")
        finally:
            await db.close()

    run(work())
    assert ran == ["committed", "wake"]
