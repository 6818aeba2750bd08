"""Typed statements, and the transaction interface the core runs them through.

The core's rules are written once against `Database` and `Transaction`. The certificate
service runs them on its async statement layer (`certificate_api/database.py`: psycopg on
PostgreSQL, SQLAlchemy in a thread on SQLite); the account service runs them on its ORM
session (`core.sessions`). A `Query` pairs a Core statement with the NamedTuple its rows
become, checked against the statement's columns when the query is defined.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import ExecutableReturnsRows

R = TypeVar("R", bound=tuple[Any, ...])
R_co = TypeVar("R_co", covariant=True)
Command = Executable  # a statement whose rows, if any, nobody reads (INSERT, UPDATE, DELETE)


class Query(Generic[R]):
    """A statement that returns rows, and the row type each of them becomes."""

    __slots__ = ("row", "statement")

    def __init__(self, statement: ExecutableReturnsRows, row: type[R]) -> None:
        columns = [column.key for column in statement.exported_columns]
        fields = list(getattr(row, "_fields", ()))
        if columns != fields:
            raise TypeError(f"{row.__name__} has fields {fields}; the statement returns {columns}")
        self.statement = statement
        self.row = row

    def make(self, values: Sequence[Any]) -> R:
        """A row of this query from its values, in column order."""
        return self.row(*values)


class Pending(Protocol[R_co]):
    """A statement sent (or queued), whose row is read later."""

    async def one(self) -> R_co | None: ...


class Transaction(Protocol):
    """Statements run in one transaction, committed when the block ends without error.

    An implementation may queue statements and send them together (the PostgreSQL layer
    does): an error may then surface at the next read or at the commit instead of at its own
    statement; either way the transaction rolls back.
    """

    async def one(self, query: Query[R], **params: Any) -> R | None: ...
    async def all(self, query: Query[R], **params: Any) -> list[R]: ...
    async def execute(self, statement: Command, **params: Any) -> None: ...
    async def start(self, query: Query[R], **params: Any) -> Pending[R]: ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back)."""
        ...

    def events_recorded(self) -> None:
        """Wake the delivery workers once this transaction has committed."""
        ...


class Database(Protocol):
    """Reads outside a transaction, and transactions."""

    async def one(self, query: Query[R], **params: Any) -> R | None: ...
    async def all(self, query: Query[R], **params: Any) -> list[R]: ...
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]: ...
    async def close(self) -> None: ...


class Ready(Generic[R]):
    """A `Pending` whose row is already there (executors that run each statement at once)."""

    __slots__ = ("row",)

    def __init__(self, row: R | None) -> None:
        self.row = row

    async def one(self) -> R | None:
        return self.row
