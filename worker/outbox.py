"""The outbox as the worker and operators see it: claim, settle, list, requeue, endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, aliased

from schema.base import utcnow
from schema.events import Event, EventState, WebhookEndpoint, endpoint_key

PENDING = EventState.PENDING.value


def claim(
    session: Session, limit: int, lease: timedelta, now: datetime | None = None
) -> list[Event]:
    """Lease up to `limit` due events, at most one per subject: the oldest pending one.

    A later event of a certificate waits while an earlier one is pending, which keeps
    per-certificate order. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets several workers
    claim at once without a coordinator; the lease (not the lock) then owns the event.
    """
    now = now or utcnow()
    earlier = aliased(Event)
    blocked = (
        select(earlier.seq)
        .where(
            earlier.subject_id == Event.subject_id,
            earlier.state == PENDING,
            earlier.seq < Event.seq,
        )
        .exists()
    )
    query = (
        select(Event)
        .where(
            Event.state == PENDING,
            Event.next_attempt_at <= now,
            (Event.leased_until.is_(None)) | (Event.leased_until < now),
            ~blocked,
        )
        .order_by(Event.seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Event)
    )
    events = {event.seq: event for event in session.scalars(query)}
    if not events:
        session.rollback()
        return []
    until = now + lease
    # One compare-and-set for the batch, so that even without row locks (SQLite) two
    # workers never both win an event.
    won = session.scalars(
        update(Event)
        .where(
            Event.seq.in_(list(events)),
            Event.state == PENDING,
            (Event.leased_until.is_(None)) | (Event.leased_until < now),
        )
        .values(leased_until=until)
        .returning(Event.seq)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    claimed = [events[seq] for seq in sorted(won)]
    for event in claimed:
        event.leased_until = until
    return claimed


def _settle(session: Session, event: Event, **values: object) -> None:
    session.execute(
        update(Event)
        .where(Event.seq == event.seq, Event.leased_until == event.leased_until)
        .values(leased_until=None, **values)
        .execution_options(synchronize_session=False)
    )


def delivered(session: Session, event: Event, status: int, now: datetime) -> None:
    """Record a 2xx."""
    _settle(
        session,
        event,
        state=EventState.DELIVERED.value,
        delivered_at=now,
        attempts=event.attempts + 1,
        last_status=status,
        last_error=None,
    )


def retry_later(
    session: Session,
    event: Event,
    status: int | None,
    error: str,
    next_attempt_at: datetime | None,
) -> None:
    """Record a failed attempt: try again at `next_attempt_at`, or, when None (the retry
    window is over), mark the event failed for good."""
    _settle(
        session,
        event,
        attempts=event.attempts + 1,
        last_status=status,
        last_error=error[:2000],
        **({"next_attempt_at": next_attempt_at} if next_attempt_at is not None else {}),
        state=EventState.FAILED.value if next_attempt_at is None else PENDING,
    )


def release(session: Session, event: Event) -> None:
    """Give the event back untouched (endpoint disabled, worker stopping)."""
    _settle(session, event)


def endpoint_disabled(session: Session, url: str) -> WebhookEndpoint | None:
    """The endpoint row when deliveries to it are stopped (after a 410)."""
    row = session.get(WebhookEndpoint, endpoint_key(url))
    return row if row is not None and row.disabled_at is not None else None


def disable_endpoint(session: Session, url: str, reason: str, now: datetime) -> None:
    """Stop deliveries to this URL until an operator re-enables it."""
    key = endpoint_key(url)
    row = session.get(WebhookEndpoint, key) or WebhookEndpoint(url=key)
    row.disabled_at, row.disabled_reason = now, reason
    session.add(row)


def enable_endpoint(session: Session, url: str) -> bool:
    """Let deliveries to this URL resume; False when it was not disabled."""
    row = session.get(WebhookEndpoint, endpoint_key(url))
    if row is None or row.disabled_at is None:
        return False
    row.disabled_at, row.disabled_reason = None, None
    session.commit()
    return True


def counts(session: Session) -> dict[str, int]:
    """Events per state."""
    rows = session.execute(select(Event.state, func.count()).group_by(Event.state)).all()
    return {state.value: 0 for state in EventState} | {row[0]: int(row[1]) for row in rows}


def listing(session: Session, state: str | None, limit: int) -> Sequence[Event]:
    """Newest events first, optionally of one state."""
    query = select(Event).order_by(Event.seq.desc()).limit(limit)
    if state:
        query = query.where(Event.state == state)
    return session.scalars(query).all()


def requeue(session: Session, event_ids: Sequence[uuid.UUID] | None, retry_for: timedelta) -> int:
    """Send failed events again (all of them when no ids are given); returns how many."""
    condition = Event.state == EventState.FAILED.value
    if event_ids:
        condition = and_(condition, Event.id.in_(event_ids))
    result = session.execute(
        update(Event)
        .where(condition)
        .values(
            state=PENDING,
            next_attempt_at=utcnow(),
            leased_until=None,
            retry_until=utcnow() + retry_for,
        )
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
