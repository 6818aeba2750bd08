"""What turning psycopg's prepared statements off costs: `python -m bench.prepared [--rounds N]`.

The product never prepares statements on the server (`schema.db.PSYCOPG_CONNECT_ARGS`), so it
stays correct behind PgBouncer in transaction mode. This measures the client CPU of one
primary-key read (the shape of a fetch) on a direct connection, with psycopg's default
(prepared after 5 runs) and without, in alternating rounds so that a busy machine's drift
falls on both alike. PostgreSQL's CPU is not counted. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import psycopg
import psycopg.rows
import psycopg_pool
from sqlalchemy import bindparam, select
from sqlalchemy.engine import make_url

from bench.services import BenchDatabase, default_server
from certificate_api.database import PostgresDatabase, _Prepared
from schema.accounts import Account

READ = select(Account.__table__).where(Account.id == bindparam("id"), Account.deleted_at.is_(None))
IN_FLIGHT = 16


async def _pool(url: str, threshold: int | None) -> psycopg_pool.AsyncConnectionPool[Any]:
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        url,
        min_size=IN_FLIGHT,
        max_size=IN_FLIGHT,
        open=False,
        kwargs={
            "autocommit": True,
            "prepare_threshold": threshold,
            "row_factory": psycopg.rows.namedtuple_row,
        },
    )
    await pool.open(wait=True)
    return pool


async def _round(
    pool: psycopg_pool.AsyncConnectionPool[Any], read: _Prepared, ids: list[Any], count: int
) -> float:
    """Client CPU microseconds per read, `count` reads with IN_FLIGHT at a time."""

    async def reader(n: int) -> None:
        for i in range(n):
            async with pool.connection() as conn:
                cursor = await conn.execute(read.sql, read.params({"id": ids[i % len(ids)]}))
                await cursor.fetchone()

    await asyncio.gather(*(reader(10) for _ in range(IN_FLIGHT)))  # past the threshold
    cpu = time.process_time()
    await asyncio.gather(*(reader(count // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    return (time.process_time() - cpu) / count * 1e6


async def measure(url: str, rounds: int, count: int) -> dict[str, list[float]]:
    """Alternating rounds of prepared and unprepared reads."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts (id, email, email_key, name, password_hash, role, created_at,"
            " updated_at) SELECT gen_random_uuid(), 'p' || g || '@example.com',"
            " 'p' || g || '@example.com', 'bench', 'x', 'customer', now(), now()"
            " FROM generate_series(1, 200) g"
        )
        ids = [row[0] for row in conn.execute("SELECT id FROM accounts")]
    read = PostgresDatabase(url, 1, 5).prepared(READ)  # the product's compiled statement
    pools = {"prepared": await _pool(url, 5), "unprepared": await _pool(url, None)}
    results: dict[str, list[float]] = {name: [] for name in pools}
    try:
        for turn in range(rounds):
            order = list(pools) if turn % 2 == 0 else list(pools)[::-1]
            for name in order:
                results[name].append(await _round(pools[name], read, ids, count))
    finally:
        for pool in pools.values():
            await pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prepared", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reads", type=int, default=2000, help="per round (2,000)")
    parser.add_argument("--database-url", default=default_server(), help="PostgreSQL server")
    args = parser.parse_args()
    database = BenchDatabase(args.database_url)
    database.create()
    try:
        url = make_url(database.url).set(drivername="postgresql")
        results = asyncio.run(
            measure(url.render_as_string(hide_password=False), args.rounds, args.reads)
        )
    finally:
        database.drop()
    print(f"client CPU per primary-key read, direct connection, {IN_FLIGHT} in flight")
    for name, values in results.items():
        shown = ", ".join(f"{value:.0f}" for value in sorted(values))
        print(f"  {name:<11} median {statistics.median(values):6.0f} µs   rounds: {shown}")
    ratio = statistics.median(results["unprepared"]) / statistics.median(results["prepared"])
    print(f"  unprepared / prepared: {ratio:.2f}")


if __name__ == "__main__":
    main()
