"""Login throttling kept in the database, so it holds across workers and restarts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from schema.accounts import LoginFailure


@dataclass(frozen=True)
class Limits:
    """How many failures, within which window, lock out an email or a client address."""

    window: timedelta
    per_email: int
    per_client: int


def _locked_until(
    session: Session, whose: ColumnElement[bool], limit: int, since: datetime, window: timedelta
) -> datetime | None:
    times = session.scalars(
        select(LoginFailure.failed_at)
        .where(whose, LoginFailure.failed_at > since)
        .order_by(LoginFailure.failed_at.desc())
        .limit(limit)
    ).all()
    if len(times) < limit:
        return None
    # Locked until the oldest of the last `limit` failures leaves the window.
    return times[-1] + window


def retry_after(
    session: Session, email_key: str, client: str, now: datetime, limits: Limits
) -> int | None:
    """Seconds to wait before another attempt, or None when attempts are allowed."""
    window = limits.window
    since = now - window
    by_email = LoginFailure.email_key == email_key
    by_client = LoginFailure.client == client
    ends = [
        moment
        for moment in (
            _locked_until(session, by_email, limits.per_email, since, window),
            _locked_until(session, by_client, limits.per_client, since, window),
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
