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

Either way the core gets each query's own row type (`core.queries`) holding the same Python
types (UUID, timezone-aware datetime, lists for JSON), and errors arrive as SQLAlchemy's
(`IntegrityError`, `OperationalError`, `TimeoutError`), so the service's handlers answer
them the same way (409/replay, 503).

Skipping SQLAlchemy's execution also skips its type processing. So on PostgreSQL every
parameter and result column is checked when its statement is compiled (`column_support`):
a type psycopg converts as SQLAlchemy would passes; a TypeDecorator's `process_bind_param`
is applied to each parameter value (`UtcDateTime` refuses a naive datetime here too); a
type whose conversion would be skipped is refused with `UnconvertedType`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import anyio.to_thread
import orjson
import psycopg
import psycopg.conninfo
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

from certificate_api.conversions import column_support
from core.statements import Command, Database, Pending, Query, R, Ready, Transaction
from schema.db import PSYCOPG_CONNECT_ARGS
from schema.events import wake_workers

Params = Mapping[str, Any]
IDLE = psycopg.pq.TransactionStatus.IDLE


# --- PostgreSQL --------------------------------------------------------------------------------


class _Prepared:
    """A statement compiled for psycopg: its SQL, and how to turn parameters into psycopg's."""

    __slots__ = ("compiled", "decorated", "json_names", "sql")

    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        binds = compiled.binds.items()  # type: ignore[attr-defined]
        handling = {name: column_support(bind.type, "bind") for name, bind in binds}
        for column in getattr(compiled, "_result_columns", None) or ():
            column_support(column.type, "result")
        self.json_names = frozenset(name for name, bind in binds if isinstance(bind.type, JSON))
        self.decorated = {name: bind.type for name, bind in binds if handling[name] == "decorated"}

    def params(self, given: Params) -> dict[str, Any]:
        values = dict(self.compiled.construct_params(dict(given)) or {})
        for name in self.json_names:
            if values.get(name) is not None:
                values[name] = Json(values[name])
        for name, kind in self.decorated.items():
            if name in values:
                values[name] = kind.process_bind_param(values[name], self.compiled.dialect)
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
    conn: psycopg.AsyncConnection[Any], prepared: _Prepared, query: Query[R], params: Params
) -> psycopg.AsyncCursor[R]:
    """One statement on its own: server-side parameters, an unnamed statement (never
    prepared: see `schema.db.PSYCOPG_CONNECT_ARGS`)."""
    cursor = conn.cursor(row_factory=_row_factory(query))
    with _as_sqlalchemy_errors():
        return await cursor.execute(prepared.sql, prepared.params(params))


def _row_factory(query: Query[R]) -> psycopg.rows.BaseRowFactory[R]:
    return psycopg.rows.args_row(query.row)


class _Result(Pending[R]):
    """The rows one queued statement returns: there once its batch has been sent."""

    def __init__(self, tx: _PostgresTransaction, query: Query[R]) -> None:
        self.tx = tx
        self.query = query
        self.rows: list[R] = []
        self.sent = False

    async def one(self) -> R | None:
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
        self.queued: list[tuple[str, _Result[Any] | None]] = [("BEGIN", None)]
        self.committed: list[Callable[[], None]] = []

    def _sql(self, statement: Executable, params: Params) -> str:
        prepared = self.db.prepared(statement)
        return self.cursor.mogrify(prepared.sql, prepared.params(params))

    def _queue(self, query: Query[R], params: Params) -> _Result[R]:
        result = _Result(self, query)
        self.queued.append((self._sql(query.statement, params), result))
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
                    self.cursor.row_factory = _row_factory(result.query)
                    result.rows, result.sent = await self.cursor.fetchall(), True

    async def one(self, query: Query[R], **params: Any) -> R | None:
        return await self._queue(query, params).one()

    async def all(self, query: Query[R], **params: Any) -> list[R]:
        result = self._queue(query, params)
        await self.send()
        return result.rows

    async def execute(self, statement: Command, **params: Any) -> None:
        self.queued.append((self._sql(statement, params), None))

    async def start(self, query: Query[R], **params: Any) -> Pending[R]:
        return self._queue(query, params)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    def events_recorded(self) -> None:
        if self.db.wake_workers not in self.committed:
            self.committed.append(self.db.wake_workers)

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

    def __init__(
        self,
        url: str,
        size: int,
        timeout: float,
        wake_workers: Callable[[], None] = lambda: None,
    ) -> None:
        self.wake_workers = wake_workers  # after a commit that recorded events
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.checking: asyncio.Future[None] | None = None
        self.dialect = sa_psycopg.dialect()  # type: ignore[no-untyped-call]
        self.cache: dict[Executable, _Prepared] = {}
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

    def prepared(self, statement: Executable) -> _Prepared:
        """The statement compiled for psycopg, once; refused (`UnconvertedType`) if it binds
        or returns a type this layer would not convert as SQLAlchemy does."""
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

    async def one(self, query: Query[R], **params: Any) -> R | None:
        async with self._connection() as conn:
            prepared = self.prepared(query.statement)
            cursor = await _run_prepared(conn, prepared, query, params)
            return await cursor.fetchone()

    async def all(self, query: Query[R], **params: Any) -> list[R]:
        async with self._connection() as conn:
            prepared = self.prepared(query.statement)
            cursor = await _run_prepared(conn, prepared, query, params)
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
        for callback in tx.committed:
            callback()

    async def close(self) -> None:
        await self.pool.close()


# --- SQLite ------------------------------------------------------------------------------------


class _SqliteTransaction:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.committed: list[Callable[[], None]] = []

    async def _run(self, call: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(call)

    async def one(self, query: Query[R], **params: Any) -> R | None:
        row = await self._run(lambda: self.conn.execute(query.statement, params).first())
        return None if row is None else query.make(row)

    async def all(self, query: Query[R], **params: Any) -> list[R]:
        rows = await self._run(lambda: list(self.conn.execute(query.statement, params).all()))
        return [query.make(row) for row in rows]

    async def execute(self, statement: Command, **params: Any) -> None:
        await self._run(lambda: self.conn.execute(statement, params))

    async def start(self, query: Query[R], **params: Any) -> Pending[R]:
        return Ready(await self.one(query, **params))

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    def events_recorded(self) -> None:
        return None  # SQLite has no NOTIFY: workers poll


class SqliteDatabase:
    """The sync engine, a thread per statement: for development, not for throughput."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def one(self, query: Query[R], **params: Any) -> R | None:
        async with self.transaction() as tx:
            return await tx.one(query, **params)

    async def all(self, query: Query[R], **params: Any) -> list[R]:
        async with self.transaction() as tx:
            return await tx.all(query, **params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        conn = await anyio.to_thread.run_sync(self.engine.connect)
        tx = _SqliteTransaction(conn)
        try:
            await anyio.to_thread.run_sync(conn.begin)
            yield tx
            await anyio.to_thread.run_sync(conn.commit)
        finally:
            await anyio.to_thread.run_sync(conn.close)  # rolls back if not committed
        for callback in tx.committed:
            callback()

    async def close(self) -> None:
        return None


async def open_database(engine: Engine, size: int, timeout: float) -> Database:
    """The async database for the engine's URL (PostgreSQL or SQLite)."""
    if engine.dialect.name == "postgresql":
        url = engine.url.render_as_string(hide_password=False)
        db = PostgresDatabase(url, size, timeout, lambda: wake_workers(engine))
        await db.open()
        return db
    return SqliteDatabase(engine)
