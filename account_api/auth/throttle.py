"""Login throttling kept in the database, so it holds across workers and restarts.

Failures are counted per (email, client address) and per client address, never per email
alone: failures sent from one address never lock the owner out from another. An attempt
is recorded as a failure *before* its password is checked, under a lock per client
address, so parallel guesses cannot all pass the count: of twelve sent at once with five
allowed, five are checked and seven answered 429. A success removes its own record.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from schema.accounts import LoginFailure


@dataclass(frozen=True)
class Limits:
    """How many failures in which window."""

    window: timedelta
    per_email_and_client: int
    per_client: int


class Throttled(Exception):
    """Too many recent failures: wait `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


def _serialize_per_client(session: Session, client: str) -> None:
    """Hold, until commit, a lock that every attempt from this client address takes.

    PostgreSQL: a transaction-scoped advisory lock on a hash of the address. SQLite has one
    writer at a time: the INSERT that follows takes its write lock, which does the same.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(client.encode()).digest()[:8], "big", signed=True)
        session.execute(select(func.pg_advisory_xact_lock(key)))


def _locked_until(
    session: Session,
    condition: ColumnElement[bool],
    limit: int,
    now: datetime,
    limits: Limits,
) -> datetime | None:
    since = now - limits.window
    times = session.scalars(
        select(LoginFailure.failed_at)
        .where(condition, LoginFailure.failed_at > since)
        .order_by(LoginFailure.failed_at.desc())
        .limit(limit)
    ).all()
    if len(times) < limit:
        return None
    # Locked until the oldest of the last `limit` failures leaves the window.
    return times[-1] + limits.window


def reserve(session: Session, email_key: str, client: str, now: datetime, limits: Limits) -> int:
    """Record this attempt as a failure and commit, or raise Throttled (nothing recorded).

    Returns the record's id; `succeeded` removes it with the address's other failures for
    that email if the password turns out right.
    """
    _serialize_per_client(session, client)
    attempt = LoginFailure(email_key=email_key, client=client, failed_at=now)
    session.add(attempt)
    session.flush()
    # Read before the commit: once it commits, a concurrent right password from the same
    # address may delete the record (`succeeded`), and reading the id would then fail.
    attempt_id = attempt.id
    # Counted: earlier failures, not this attempt's own record.
    others = (LoginFailure.client == client) & (LoginFailure.id != attempt_id)
    checks = [
        (others & (LoginFailure.email_key == email_key), limits.per_email_and_client),
        (others, limits.per_client),
    ]
    ends = [
        moment
        for condition, limit in checks
        if (moment := _locked_until(session, condition, limit, now, limits)) is not None
    ]
    if ends:
        session.rollback()
        raise Throttled(max(1, math.ceil((max(ends) - now).total_seconds())))
    session.commit()
    return attempt_id


def succeeded(session: Session, email_key: str, client: str) -> None:
    """A right password from this address forgets that email's failures from it (its own
    reservation included); the caller commits."""
    session.execute(
        delete(LoginFailure).where(
            LoginFailure.email_key == email_key, LoginFailure.client == client
        )
    )


def prune(session: Session, before: datetime) -> int:
    """Drop failures that no window can count any more; returns how many."""
    result = session.execute(delete(LoginFailure).where(LoginFailure.failed_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
