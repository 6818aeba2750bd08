"""Through a real PgBouncer in transaction mode (deploy/pgbouncer.ini): every answer right.

A server connection serves one transaction of one client, then another client's. Anything a
client leaves on a session (a prepared statement, a SET, a LISTEN) is then seen by others,
or missing for itself: psycopg's automatic prepared statements gave wrong rows and errors
here. Each shape below runs past psycopg's preparing threshold from many clients at once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections import namedtuple
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Integer,
    String,
    bindparam,
    create_engine,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.engine import make_url

from bench.pgbouncer import SMALL_SERVER, PgBouncer
from certificate_api.database import PostgresDatabase
from core.statements import Query
from schema.db import make_engine, normalize_url
from schema.events import WebhookEndpoint
from tests.conftest import (
    DIRECT_SERVER_URL,
    Databases,
    account_settings,
    certificate_settings,
    free_port,
    postgres_only,
)
from worker.delivery import Wakeup

pytestmark = postgres_only
if shutil.which("pgbouncer") is None and not os.environ.get("CI"):
    pytestmark = [postgres_only, pytest.mark.skip(reason="pgbouncer not installed")]

ROUNDS = 12  # each shape runs this often per client: past psycopg's threshold of 5
CLIENTS = 8


# Statement shapes with parameters of several types; each answer names its inputs, so a
# row meant for another statement or another client shows.
def _typed(*columns: Any) -> Query[Any]:
    """A select of these expressions as a typed query (columns c0, c1, ...)."""
    names = [f"c{i}" for i in range(len(columns))]
    labelled = [column.label(name) for column, name in zip(columns, names, strict=True)]
    return Query(select(*labelled), namedtuple("Row", names))


SHAPES: list[tuple[Any, Any]] = [
    (
        _typed(bindparam("n", type_=Integer) + literal(1)),
        lambda n, word: (n + 1,),
    ),
    (
        _typed(func.upper(bindparam("word", type_=String))),
        lambda n, word: (word.upper(),),
    ),
    (
        _typed(func.length(bindparam("word", type_=String)), bindparam("n", type_=Integer)),
        lambda n, word: (len(word), n),
    ),
    (
        _typed(func.concat(bindparam("word", type_=String), "-", bindparam("n", type_=Integer))),
        lambda n, word: (f"{word}-{n}",),
    ),
    (
        _typed(bindparam("n", type_=Integer) * literal(3), func.lower(bindparam("word", String))),
        lambda n, word: (n * 3, word.lower()),
    ),
    (
        Query(
            select(func.count().label("c0"))
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.url == bindparam("word", type_=String)),
            namedtuple("Count", ["c0"]),
        ),
        lambda n, word: (0,),
    ),
]


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[PgBouncer]:
    with PgBouncer(DIRECT_SERVER_URL, free_port(), SMALL_SERVER) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def pooled_database(databases: Databases, pgbouncer: PgBouncer) -> str:
    """A migrated database whose default time zone is not UTC, through the pooler."""
    url = databases.create()
    direct = databases.direct(url)
    admin = create_engine(normalize_url(direct), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(f"ALTER DATABASE \"{make_url(url).database}\" SET timezone = 'Asia/Kolkata'")
        )
    admin.dispose()
    return pgbouncer.url_for(direct)


def _expected(shape: int, n: int, word: str) -> tuple[Any, ...]:
    result: tuple[Any, ...] = SHAPES[shape][1](n, word)
    return result


def test_async_layer_answers_every_shape_right(pooled_database: str) -> None:
    async def client(db: PostgresDatabase, who: int) -> list[str]:
        wrong = []
        for round_ in range(ROUNDS):
            for index, (statement, _) in enumerate(SHAPES):
                n, word = who * 1000 + round_, f"w{who}x{round_}"
                try:
                    row = await db.one(statement, n=n, word=word)
                    got = tuple(row)
                except Exception as exc:  # an error is a wrong answer too
                    got = (repr(exc)[:80],)
                if got != _expected(index, n, word):
                    wrong.append(f"shape {index}: {got}")
        return wrong

    async def work() -> tuple[list[str], int]:
        db = PostgresDatabase(pooled_database, size=CLIENTS, timeout=10)
        await db.open()
        try:
            results = await asyncio.gather(*(client(db, who) for who in range(CLIENTS)))
            committed = await _batched_transactions(db)
        finally:
            await db.close()
        return [line for lines in results for line in lines], committed

    wrong, committed = asyncio.run(work())
    assert wrong == []
    assert committed == CLIENTS * 5


async def _batched_transactions(db: PostgresDatabase) -> int:
    """Transactions sent as one message each (BEGIN ... COMMIT), many at once."""
    prefix = f"https://{uuid.uuid4().hex}.example/"
    add = insert(WebhookEndpoint).values(url=bindparam("address"))
    count = Query(
        select(func.count().label("c0"))
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.url.startswith(bindparam("prefix"))),
        namedtuple("Count", ["c0"]),
    )

    async def one(who: int) -> None:
        for round_ in range(5):
            async with db.transaction() as tx:
                await tx.execute(add, address=f"{prefix}{who}/{round_}")
                await tx.one(count, prefix=f"{prefix}{who}/")

    await asyncio.gather(*(one(who) for who in range(CLIENTS)))
    total: int = (await db.one(count, prefix=prefix))[0]
    return total


def test_sqlalchemy_engine_answers_every_shape_right(pooled_database: str) -> None:
    """The engines of the account service, the CRL routes, the CLI and the worker."""
    engine = make_engine(pooled_database, pool_size=CLIENTS)

    def client(who: int) -> list[str]:
        wrong = []
        with engine.connect() as conn:  # one client connection, many transactions
            for round_ in range(ROUNDS):
                for index, (statement, _) in enumerate(SHAPES):
                    n, word = who * 1000 + round_, f"w{who}x{round_}"
                    try:
                        got = tuple(conn.execute(statement.statement, {"n": n, "word": word}).one())
                    except Exception as exc:  # an error is a wrong answer too
                        conn.rollback()
                        got = (repr(exc)[:80],)
                    conn.commit()
                    if got != _expected(index, n, word):
                        wrong.append(f"shape {index}: {got}")
        return wrong

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            wrong = [line for lines in pool.map(client, range(CLIENTS)) for line in lines]
    finally:
        engine.dispose()
    assert wrong == []


def test_services_work_through_pgbouncer(pooled_database: str, var_dir: Path) -> None:
    """Both services on the pooled URL alone (no other setting): ready, and certificates
    issued, fetched and listed with times in UTC although the server's zone is not."""
    from fastapi.testclient import TestClient

    from account_api import create_app as create_account_app
    from certificate_api.main import create_app

    accounts = create_account_app(account_settings(pooled_database, var_dir)).test_client()
    email = f"pooled-{uuid.uuid4().hex[:8]}@example.com"
    signed_up = accounts.post(
        "/api/accounts", json={"email": email, "password": "s3cret-passw0rd", "name": "P"}
    )
    assert signed_up.status_code == 201
    assert signed_up.json["created_at"].endswith("Z")
    token = accounts.post("/api/auth/token", json={"email": email, "password": "s3cret-passw0rd"})
    auth = {"Authorization": f"Bearer {token.json['access_token']}"}
    assert accounts.get("/readyz").status_code == 200

    settings = certificate_settings(pooled_database, var_dir)
    with TestClient(create_app(settings)) as certs:
        assert certs.get("/readyz").status_code == 200
        ids = []
        for _ in range(8):  # past the threshold at which psycopg would prepare
            issued = certs.post(
                "/api/certificates",
                json={"common_name": f"{uuid.uuid4().hex[:8]}.example.com"},
                headers=auth,
            )
            assert issued.status_code == 201, issued.text
            ids.append(issued.json()["id"])
        for certificate_id in ids:
            fetched = certs.get(f"/api/certificates/{certificate_id}", headers=auth)
            assert fetched.status_code == 200
            body = fetched.json()
            assert body["id"] == certificate_id
            assert body["created_at"].endswith("Z") and body["not_after"].endswith("Z")
        listed = certs.get("/api/certificates?limit=100", headers=auth).json()["items"]
        assert sorted(item["id"] for item in listed) == sorted(ids)
        assert certs.get("/api/ca/crl").status_code == 200


def test_worker_listens_on_a_direct_connection_and_polls_through_the_pooler(
    pooled_database: str, databases: Databases
) -> None:
    direct = Wakeup(databases.direct(pooled_database))
    pooled = Wakeup(pooled_database)
    try:
        assert direct.listening.wait(30)
        assert pooled.thread is not None
        pooled.thread.join(30)  # the probe's NOTIFY never arrives: the listener gives up
        assert not pooled.thread.is_alive()
        assert not pooled.listening.is_set()
    finally:
        direct.close()
        pooled.close()


def test_migrations_go_to_the_direct_url(databases: Databases, tmp_path: Path) -> None:
    """`ca-admin migrate` runs on DATABASE_DIRECT_URL when it is set: DATABASE_URL here names
    a server that does not exist."""
    direct = databases.direct(databases.create(migrate=False))
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        "DATABASE_DIRECT_URL": direct,
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ca_admin.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    engine = create_engine(normalize_url(direct))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
