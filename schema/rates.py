"""Rate counters kept in the database, so a limit holds across processes and restarts.

One row per (scope, key): the current fixed window's start and how many hits it has had.
A hit is one statement, `INSERT … ON CONFLICT DO UPDATE … RETURNING`, atomic under
concurrency on PostgreSQL and SQLite alike: the count it returns is this hit's rank in the
window, so "allow while count <= limit" admits exactly `limit` per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, case
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base

# The longest window any limit counts in (sign-ups per address: an hour). A row whose
# window started longer ago than this counts for nothing: its next hit starts again at 1,
# so the worker deletes it (worker/retention.py).
LONGEST_WINDOW = timedelta(hours=1)


class RateCounter(Base):
    """Hits of one key (an account, a client address) in the current window of one scope."""

    __tablename__ = "rate_counters"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime]
    count: Mapped[int]


def hit_statement(dialect: str) -> Any:
    """Count one hit of `:scope`/`:key` in the window starting at `:window_start`; returns
    `hits` (this one included; a new window starts again at 1) and `window_start`."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(RateCounter).values(
        scope=bindparam("scope", type_=RateCounter.scope.type),
        key=bindparam("key", type_=RateCounter.key.type),
        window_start=bindparam("window_start", type_=RateCounter.window_start.type),
        count=1,
    )
    same_window = RateCounter.window_start == statement.excluded.window_start
    return statement.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={
            "count": case((same_window, RateCounter.count + 1), else_=1),
            "window_start": statement.excluded.window_start,
        },
    ).returning(RateCounter.count.label("hits"), RateCounter.window_start)


@dataclass(frozen=True)
class Window:
    """A fixed window of `period` containing `now`."""

    start: datetime
    period: timedelta

    @classmethod
    def around(cls, now: datetime, period: timedelta) -> Window:
        """The window `now` falls in (windows are aligned on the epoch)."""
        seconds = period.total_seconds()
        start = now.timestamp() // seconds * seconds
        return cls(datetime.fromtimestamp(start, tz=now.tzinfo), period)

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the next window opens (at least 1)."""
        return max(1, math.ceil((self.start + self.period - now).total_seconds()))
