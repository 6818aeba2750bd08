"""Async database access for the certificate and OCSP routes: SQLAlchemy Core statements,
run without the ORM.

The statements are defined once, with `bindparam` placeholders, from the same tables as the
rest of the product (`schema/`). How they run depends on the backend:

- PostgreSQL: compiled once per statement for psycopg and executed on a psycopg
  `AsyncConnectionPool`, straight from the event loop; transactions go in batches (see
  `Transaction`). No thread hop, no ORM unit of work, no SQLAlchemy connection pool: a
  fetch costs about a third of the CPU it did through a sync ORM session in a thread
  (docs/performance.md).
- SQLite (the development default): executed by SQLAlchemy on the sync engine, in a thread.

Either way a route sees rows with attribute access (`row.serial_number`) and the same Python
types (UUID, timezone-aware datetime, lists for JSON), and errors arrive as SQLAlchemy's
(`IntegrityError`, `OperationalError`, `TimeoutError`), so the service's handlers answer
them the same way (409/replay, 503).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import anyio.to_thread
import orjson
import psycopg
import psycopg.adapt
import psycopg.pq
import psycopg.rows
import psycopg.types.json
import psycopg_pool
from psycopg.abc import AdaptContext, Buffer
from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import psycopg as sa_psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import Compiled

from schema.db import PSYCOPG_CONNECT_ARGS

Params = Mapping[str, Any]
Statement = Executable  # a Core select, insert, update or delete
IDLE = psycopg.pq.TransactionStatus.IDLE


class Pending(Protocol):
    """A statement sent, whose result is read later."""

    async def one(self) -> Any: ...


class Transaction(Protocol):
    """Statements run in one transaction, committed when the block ends without error.

    On PostgreSQL the statements are queued: `execute` and `start` send nothing, and the
    queue goes as one message when a result is read (`one`, `all`, `Pending.one`) and at
    commit. A transaction of several statements costs one or two round trips, not one per
    statement. An error (a constraint, say) therefore surfaces at the next read or at the
    commit instead of at its own statement; either way the transaction rolls back. On
    SQLite each statement runs when it is called.
    """

    async def one(self, statement: Statement, **params: Any) -> Any: ...
    async def all(self, statement: Statement, **params: Any) -> list[Any]: ...
    async def execute(self, statement: Statement, **params: Any) -> None: ...
    async def start(self, statement: Statement, **params: Any) -> Pending: ...


class Database(Protocol):
    """Reads outside a transaction, and transactions."""

    async def one(self, statement: Statement, **params: Any) -> Any: ...
    async def all(self, statement: Statement, **params: Any) -> list[Any]: ...
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]: ...
    async def close(self) -> None: ...


# --- PostgreSQL --------------------------------------------------------------------------------


class _Prepared:
    """A statement compiled for psycopg: its SQL, and how to turn parameters into psycopg's."""

    __slots__ = ("compiled", "json_names", "sql")

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.json_names = frozenset(
            name
            for name, bind in compiled.binds.items()  # type: ignore[attr-defined]
            if isinstance(bind.type, JSON)
        )

    def params(self, given: Params) -> dict[str, Any]:
        values = dict(self.compiled.construct_params(dict(given)) or {})
        for name in self.json_names:
            if values.get(name) is not None:
                values[name] = Json(values[name])
        return values


@contextlib.contextmanager
def _as_sqlalchemy_errors() -> Any:
    """psycopg's errors as the SQLAlchemy ones the service already answers."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise sa_exc.IntegrityError(None, None, exc) from exc
    except psycopg_pool.PoolTimeout as exc:
        raise sa_exc.TimeoutError(str(exc)) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise sa_exc.OperationalError(None, None, exc) from exc


async def _run_prepared(
    conn: psycopg.AsyncConnection[Any], prepared: _Prepared, params: Params
) -> psycopg.AsyncCursor[Any]:
    """One statement on its own: server-side parameters, an unnamed statement (never
    prepared: see `schema.db.PSYCOPG_CONNECT_ARGS`)."""
    with _as_sqlalchemy_errors():
        return await conn.execute(prepared.sql, prepared.params(params))


class _Result:
    """The rows one queued statement returns: there once its batch has been sent."""

    def __init__(self, tx: _PostgresTransaction) -> None:
        self.tx = tx
        self.rows: list[Any] = []
        self.sent = False

    async def one(self) -> Any:
        if not self.sent:
            await self.tx.send()
        return self.rows[0] if self.rows else None


class _PostgresTransaction:
    """Statements are queued and sent together, with BEGIN in front and, at the end, COMMIT
    behind: one message and one round trip per batch. Parameters are bound client-side
    (psycopg's ClientCursor quoting) so that a batch can be one multi-statement query; in
    PostgreSQL such a query runs its statements in order and stops at the first error."""

    def __init__(self, db: PostgresDatabase, conn: psycopg.AsyncConnection[Any]) -> None:
        self.db = db
        self.conn = conn
        self.cursor = psycopg.AsyncClientCursor(conn)
        # Each statement with where its rows go (None: it returns none worth keeping).
        self.queued: list[tuple[str, _Result | None]] = [("BEGIN", None)]

    def _queue(self, statement: Statement, params: Params, *, rows: bool) -> _Result:
        prepared = self.db.prepared(statement)
        result = _Result(self)
        sql = self.cursor.mogrify(prepared.sql, prepared.params(params))
        self.queued.append((sql, result if rows else None))
        return result

    async def send(self, then: str | None = None) -> None:
        """Send what is queued (and `then`, e.g. COMMIT), and keep the rows it returned."""
        if then is not None:
            self.queued.append((then, None))
        queued, self.queued = self.queued, []
        if not queued:
            return
        with _as_sqlalchemy_errors():
            await self.cursor.execute(";\n".join(sql for sql, _ in queued))
            for index, (_, result) in enumerate(queued):
                if index:
                    self.cursor.nextset()
                if result is not None:
                    result.rows, result.sent = await self.cursor.fetchall(), True

    async def one(self, statement: Statement, **params: Any) -> Any:
        return await self._queue(statement, params, rows=True).one()

    async def all(self, statement: Statement, **params: Any) -> list[Any]:
        result = self._queue(statement, params, rows=True)
        await self.send()
        return result.rows

    async def execute(self, statement: Statement, **params: Any) -> None:
        self._queue(statement, params, rows=False)

    async def start(self, statement: Statement, **params: Any) -> Pending:
        return self._queue(statement, params, rows=True)

    async def commit(self) -> None:
        await self.send(then="COMMIT")
        # A transaction in which a statement failed (an error the caller caught and went
        # past) answers COMMIT with ROLLBACK: that must not pass for a commit.
        if self.cursor.statusmessage != "COMMIT":
            raise sa_exc.OperationalError(
                "COMMIT", None, psycopg.errors.InFailedSqlTransaction("the transaction rolled back")
            )

    async def rollback(self) -> None:
        self.queued = []
        if not self.conn.closed and self.conn.info.transaction_status != IDLE:
            with contextlib.suppress(psycopg.Error):
                await self.conn.execute("ROLLBACK")


class _UtcTimestamptzLoader(psycopg.adapt.Loader):
    """timestamptz read as UTC whatever the session's TimeZone: behind a pooler the session
    is not ours to set (a startup `options` is refused by PgBouncer before 1.20, and a SET
    would stay on a server connection that other clients share)."""

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        default = psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT)
        assert default is not None  # psycopg always has one for timestamptz
        self.inner = default(oid, context)

    def load(self, data: Buffer) -> datetime:
        moment: datetime = self.inner.load(data)
        return moment.astimezone(UTC)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Times in UTC and JSON columns (DNS names, IP addresses, event payloads) with orjson:
    client-side only, no statement, so nothing is left on a server connection."""
    psycopg.types.json.set_json_loads(orjson.loads, conn)
    psycopg.types.json.set_json_dumps(orjson.dumps, conn)
    conn.adapters.register_loader("timestamptz", _UtcTimestamptzLoader)


class PostgresDatabase:
    """psycopg's async pool; connections in autocommit, transactions explicit."""

    def __init__(self, url: str, size: int, timeout: float) -> None:
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.checking: asyncio.Future[None] | None = None
        self.dialect = sa_psycopg.dialect()  # type: ignore[no-untyped-call]
        self.cache: dict[Statement, _Prepared] = {}
        self.pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]] = (
            psycopg_pool.AsyncConnectionPool(
                conninfo,
                min_size=min(size, 2),  # more are opened as load needs them
                max_size=size,
                timeout=timeout,
                open=False,
                kwargs={
                    **PSYCOPG_CONNECT_ARGS,
                    "autocommit": True,
                    "row_factory": psycopg.rows.namedtuple_row,
                },
                name="certificate-api",
                configure=_configure,
            )
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    def prepared(self, statement: Statement) -> _Prepared:
        prepared = self.cache.get(statement)
        if prepared is None:
            compiled = cast(ClauseElement, statement).compile(dialect=self.dialect)
            prepared = self.cache[statement] = _Prepared(compiled)
        return prepared

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            with _as_sqlalchemy_errors():
                async with self.pool.connection() as conn:
                    yield conn
        except sa_exc.OperationalError:
            # The server may have restarted: have the pool test its idle connections now,
            # so the requests after this one get live ones (there is no check per checkout).
            self.checking = self.checking or asyncio.ensure_future(self._check())
            raise

    async def _check(self) -> None:
        try:
            await self.pool.check()
        finally:
            self.checking = None

    async def one(self, statement: Statement, **params: Any) -> Any:
        async with self._connection() as conn:
            cursor = await _run_prepared(conn, self.prepared(statement), params)
            return await cursor.fetchone()

    async def all(self, statement: Statement, **params: Any) -> list[Any]:
        async with self._connection() as conn:
            cursor = await _run_prepared(conn, self.prepared(statement), params)
            return await cursor.fetchall()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._connection() as conn:
            tx = _PostgresTransaction(self, conn)
            try:
                yield tx
                await tx.commit()
            except BaseException:
                await tx.rollback()
                raise

    async def close(self) -> None:
        await self.pool.close()


# --- SQLite ------------------------------------------------------------------------------------


class _SqliteTransaction:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def _run(self, call: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(call)

    async def one(self, statement: Statement, **params: Any) -> Any:
        return await self._run(lambda: self.conn.execute(statement, params).first())

    async def all(self, statement: Statement, **params: Any) -> list[Any]:
        rows: list[Any] = await self._run(lambda: list(self.conn.execute(statement, params).all()))
        return rows

    async def execute(self, statement: Statement, **params: Any) -> None:
        await self._run(lambda: self.conn.execute(statement, params))

    async def start(self, statement: Statement, **params: Any) -> Pending:
        return _Ready(await self.one(statement, **params))


class _Ready:
    def __init__(self, row: Any) -> None:
        self.row = row

    async def one(self) -> Any:
        return self.row


class SqliteDatabase:
    """The sync engine, a thread per statement: for development, not for throughput."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def one(self, statement: Statement, **params: Any) -> Any:
        async with self.transaction() as tx:
            return await tx.one(statement, **params)

    async def all(self, statement: Statement, **params: Any) -> list[Any]:
        async with self.transaction() as tx:
            return await tx.all(statement, **params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        conn = await anyio.to_thread.run_sync(self.engine.connect)
        try:
            await anyio.to_thread.run_sync(conn.begin)
            yield _SqliteTransaction(conn)
            await anyio.to_thread.run_sync(conn.commit)
        finally:
            await anyio.to_thread.run_sync(conn.close)  # rolls back if not committed

    async def close(self) -> None:
        return None


async def open_database(engine: Engine, size: int, timeout: float) -> Database:
    """The async database for the engine's URL (PostgreSQL or SQLite)."""
    if engine.dialect.name == "postgresql":
        db = PostgresDatabase(engine.url.render_as_string(hide_password=False), size, timeout)
        await db.open()
        return db
    return SqliteDatabase(engine)
