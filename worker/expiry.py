"""`certificate.expiring`: one event per certificate still active `EXPIRY_NOTICE_DAYS`
before its notAfter, however many workers run and however often they restart. A periodic
job of each worker (`Worker.jobs`), every `EXPIRY_CHECK_SECONDS`.

The claim is in the database: a conditional UPDATE sets `expiry_notified_at` only where it
is still NULL, and the events of the rows it changed are inserted in the same transaction.
Two workers that pick the same certificate cannot both change it (the second one's UPDATE
re-checks the condition after the first commits, and skips the row); a worker killed
mid-pass rolls back both the marks and the events. Held or revoked certificates are not
picked (`is_active AND revoked_at IS NULL`), so they get no notice.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core.records import certificate_event_data
from schema.base import rfc3339, utcnow
from schema.certificates import EXPIRY_DUE, Certificate
from schema.events import Event, EventType, event_values, wake_workers
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def record_expiry_notices(
    session: Session, notice: timedelta, limit: int, now: datetime | None = None
) -> int:
    """Record `certificate.expiring` for up to `limit` due certificates, in one transaction;
    returns how many. Due: active, not revoked, not yet notified, notAfter within `notice`
    from now and still ahead."""
    now = now or utcnow()
    due = (
        select(Certificate.id)
        .where(
            text(EXPIRY_DUE),  # the partial index's predicate, word for word
            Certificate.not_after > now,
            Certificate.not_after <= now + notice,
        )
        .order_by(Certificate.not_after)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: concurrent workers take other rows
    )
    marked = session.execute(
        update(Certificate)
        .where(
            Certificate.id.in_(due.scalar_subquery()),
            Certificate.expiry_notified_at.is_(None),
            Certificate.is_active.is_(True),
            Certificate.revoked_at.is_(None),
        )
        .values(expiry_notified_at=now)
        .returning(
            Certificate.id,
            Certificate.account_id,
            Certificate.serial_number,
            Certificate.is_active,
            Certificate.revoked_at,
            Certificate.revocation_reason,
            Certificate.not_after,
        )
        .execution_options(synchronize_session=False)
    ).all()
    if marked:  # one multi-row INSERT: a batch is hundreds of events
        session.execute(
            insert(Event),
            [
                event_values(
                    EventType.CERTIFICATE_EXPIRING,
                    row.id,
                    certificate_event_data(row, now) | {"not_after": rfc3339(row.not_after)},
                )
                for row in marked
            ],
        )
    session.commit()
    if marked:
        bind = session.get_bind()
        wake_workers(bind.engine if isinstance(bind, Connection) else bind)
    return len(marked)


def record_due(
    sessions: sessionmaker[Session], settings: WorkerSettings, stopping: threading.Event
) -> int:
    """The worker's periodic job: record every notice now due, a batch per transaction,
    until none is left or the worker stops; returns how many."""
    notice = timedelta(days=settings.expiry_notice_days)
    total = 0
    with sessions() as session:
        while not stopping.is_set():
            recorded = record_expiry_notices(session, notice, settings.expiry_batch_size)
            total += recorded
            if recorded < settings.expiry_batch_size:  # not a full batch: none left
                break
    return total


__all__ = ["record_due", "record_expiry_notices"]
