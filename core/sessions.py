"""The core's rules on a synchronous SQLAlchemy session (the account service, the CLI).

The core is written once, as `async` functions over `core.statements.Transaction`. Here
each statement runs at once on the session, so no await ever suspends: `run` drives such a
coroutine to its end in one step, with no event loop, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from core.statements import Command, Pending, Query, R, Ready

T = TypeVar("T")
_AFTER_COMMIT = "core.after_commit"


class SessionTransaction:
    """`Transaction` on a session's current transaction; the session's owner commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def one(self, query: Query[R], **params: Any) -> R | None:
        row = self.session.execute(query.statement, params).first()
        return None if row is None else query.make(row)

    async def all(self, query: Query[R], **params: Any) -> list[R]:
        return [query.make(row) for row in self.session.execute(query.statement, params)]

    async def execute(self, statement: Command, **params: Any) -> None:
        self.session.execute(statement, params)

    async def start(self, query: Query[R], **params: Any) -> Pending[R]:
        return Ready(await self.one(query, **params))

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.session.info.setdefault(_AFTER_COMMIT, []).append(callback)

    def events_recorded(self) -> None:
        # schema.events wakes the workers after a session commit that recorded events.
        self.session.info["events_recorded"] = True


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


@event.listens_for(Session, "after_rollback")
def _forget_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def run(work: Coroutine[Any, Any, T]) -> T:
    """The result of a core coroutine run on a `SessionTransaction`: it never suspends, so
    one step finishes it. One that waits on anything else is a mistake, refused."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("core work on a session waited on something that is not the session")
