"""Login throttling kept in the database, so it holds across workers and restarts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from schema.accounts import LoginFailure


def _locked_until(
    session: Session,
    column: InstrumentedAttribute[str],
    value: str,
    limit: int,
    since: datetime,
    window: timedelta,
) -> datetime | None:
    times = session.scalars(
        select(LoginFailure.failed_at)
        .where(column == value, LoginFailure.failed_at > since)
        .order_by(LoginFailure.failed_at.desc())
        .limit(limit)
    ).all()
    if len(times) < limit:
        return None
    # Locked until the oldest of the last `limit` failures leaves the window.
    return times[-1] + window


def retry_after(
    session: Session,
    email_key: str,
    client: str,
    now: datetime,
    window: timedelta,
    per_email: int,
    per_client: int,
) -> int | None:
    """Seconds to wait before another attempt, or None when attempts are allowed."""
    since = now - window
    ends = [
        moment
        for moment in (
            _locked_until(session, LoginFailure.email_key, email_key, per_email, since, window),
            _locked_until(session, LoginFailure.client, client, per_client, since, window),
        )
        if moment is not None
    ]
    if not ends:
        return None
    return max(1, math.ceil((max(ends) - now).total_seconds()))


def record_failure(session: Session, email_key: str, client: str, now: datetime) -> None:
    """Remember one failed attempt."""
    session.add(LoginFailure(email_key=email_key, client=client, failed_at=now))


def clear_failures(session: Session, email_key: str) -> None:
    """A successful login forgets that email's failures."""
    session.execute(delete(LoginFailure).where(LoginFailure.email_key == email_key))


def prune(session: Session, before: datetime) -> int:
    """Drop failures that no window can count any more; returns how many."""
    result = session.execute(delete(LoginFailure).where(LoginFailure.failed_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
