"""Limits on requests that are cheap to send and expensive to serve.

- Issuance per account: at most ISSUANCE_RATE_PER_MINUTE certificates a minute (429 with
  Retry-After past it), counted in the database (`schema.rates`), so the limit holds
  across worker processes. On PostgreSQL the count and the account check that issuance
  makes anyway are one statement, one round trip.
- Slow key generation: an RSA key not taken from the pool is made in a thread; at most
  MAX_SLOW_KEY_GENERATIONS at once per process, and a request past that is answered 503
  with Retry-After at once instead of queueing (or blocking the event loop).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import anyio.to_thread
from sqlalchemy import bindparam, select, true

from certificate_api.certificates import queries
from certificate_api.database import Database, PostgresDatabase
from certificate_api.errors import ApiError, ServiceUnavailable, Unauthorized
from schema.accounts import Account
from schema.base import utcnow
from schema.rates import Window, hit_statement
from schema.tokens import TokenClaims

T = TypeVar("T")
ISSUE_SCOPE = "issue"
MINUTE = timedelta(minutes=1)

_HIT = {dialect: hit_statement(dialect) for dialect in ("postgresql", "sqlite")}
_hit_cte = _HIT["postgresql"].cte("hit")
# The account check of issuance and this minute's count, in one statement.
_ACCOUNT_AND_HIT = (
    select(Account.role, Account.deleted_at, _hit_cte.c.hits)
    .select_from(Account)
    .outerjoin(_hit_cte, true())
    .where(Account.id == bindparam("account_id"))
)


class TooManyRequests(ApiError):
    status, title = 429, "Too Many Requests"


async def authorize_issuance(db: Database, claims: TokenClaims, per_minute: int) -> None:
    """401 if the caller's account is gone; 429 with Retry-After if it has already issued
    `per_minute` certificates this minute. Every call counts, allowed or not."""
    now = utcnow()
    window = Window.around(now, MINUTE)
    params = {"scope": ISSUE_SCOPE, "key": str(claims.account_id), "window_start": window.start}
    if isinstance(db, PostgresDatabase):
        row = await db.one(_ACCOUNT_AND_HIT, account_id=claims.account_id, **params)
        count = row.hits if row is not None else 0
    else:  # SQLite has no INSERT in a WITH: two statements
        count = (await db.one(_HIT["sqlite"], **params)).hits
        row = await db.one(queries.ACCOUNT, account_id=claims.account_id)
    if row is None or row.deleted_at is not None:
        raise Unauthorized()
    if count > per_minute:
        raise TooManyRequests(
            f"at most {per_minute} certificates a minute per account; retry later",
            {"Retry-After": str(window.retry_after(now))},
        )


class SlowKeyGate:
    """How many slow key generations may run at once in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    async def run(self, work: Callable[[], T]) -> T:
        """`work` in a thread, or 503 with Retry-After at once when `limit` already run."""
        if self.running >= self.limit:
            raise ServiceUnavailable(
                "too many keys are being generated; retry shortly, or use a CSR or an EC key type",
                {"Retry-After": "2"},
            )
        self.running += 1
        try:
            return await anyio.to_thread.run_sync(work)
        finally:
            self.running -= 1
