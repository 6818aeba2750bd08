"""Limits on work that is cheap to ask for and expensive to do.

- Issuance per account: at most `per_minute` certificates a minute (`RateLimited` past it),
  counted in the database (`schema.rates`), so the limit holds across processes. Every
  call counts, allowed or not. The count rides on the statement of issuance's account
  check (`core.name_check.NameRules.authorize`): on PostgreSQL as a data-modifying CTE, so
  issuance still opens with one round trip; SQLite has no INSERT in a WITH and counts in a
  statement of its own.
- Keys made on demand: an RSA key not taken from the pool is made in a thread; at most
  `limit` at once per process (`SlowKeyGate`), and past that `Busy` at once, rather than a
  queue of threads (or a blocked event loop).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import anyio.to_thread

from core.errors import Busy, RateLimited
from core.statements import Query
from schema.rates import Window, hit_statement

T = TypeVar("T")
ISSUE_SCOPE = "issue"
MINUTE = timedelta(minutes=1)


class HitRow(NamedTuple):
    """One counted hit: its rank in the window (this one included), and the window."""

    hits: int
    window_start: datetime


def hit_query(dialect: str) -> Query[HitRow]:
    """The counting statement on its own (for databases that cannot join it to a read)."""
    return Query(hit_statement(dialect), HitRow)


@dataclass(frozen=True)
class IssuanceRate:
    """Certificates one account may have issued per minute."""

    per_minute: int

    def params(self, account_id: uuid.UUID, now: datetime) -> dict[str, Any]:
        """The counting statement's parameters: this account, the minute of `now`."""
        window = Window.around(now, MINUTE)
        return {"scope": ISSUE_SCOPE, "key": str(account_id), "window_start": window.start}

    def check(self, hits: int, now: datetime) -> None:
        """`RateLimited` (with the seconds to the next minute) when `hits`, this call's rank
        in the minute of `now`, is past the rate."""
        if hits > self.per_minute:
            raise RateLimited(
                f"at most {self.per_minute} certificates a minute per account; retry later",
                Window.around(now, MINUTE).retry_after(now),
            )


class SlowKeyGate:
    """How many slow key generations may run at once in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    async def run(self, work: Callable[[], T]) -> T:
        """`work` in a thread, or `Busy` at once when `limit` of them already run."""
        if self.running >= self.limit:
            raise Busy(
                "too many keys are being generated; retry shortly, or use a CSR or an EC key type",
                2,
            )
        self.running += 1
        try:
            return await anyio.to_thread.run_sync(work)
        finally:
            self.running -= 1
