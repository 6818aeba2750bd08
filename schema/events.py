"""The transactional outbox: both services record events in the same transaction as the change."""

from __future__ import annotations

import enum
import hashlib
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import JSON, Connection, Engine, Index, Integer, String, Text, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from schema.base import BIGINT_PK, Base, rfc3339, utcnow

log = logging.getLogger(__name__)


class EventState(enum.StrEnum):
    """Where an event is in delivery."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EventType(enum.StrEnum):
    """Every event type the external system receives."""

    CERTIFICATE_CREATED = "certificate.created"
    CERTIFICATE_ACTIVATED = "certificate.activated"
    CERTIFICATE_DEACTIVATED = "certificate.deactivated"
    CERTIFICATE_REVOKED = "certificate.revoked"
    DOMAIN_VALIDATED = "domain.validated"
    DOMAIN_INVALID = "domain.invalid"
    CERTIFICATE_EXPIRING = "certificate.expiring"
    ACCOUNT_DELETED = "account.deleted"


class Event(Base):
    """One change to report. `seq` orders events; `subject_id` groups those that stay in order."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=EventState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A worker that claimed the event owns it until then; a crashed worker's lease runs out.
    leased_until: Mapped[datetime | None] = mapped_column(default=None)
    # Retried until then (default: created_at + the worker's retry window); requeue moves it.
    retry_until: Mapped[datetime | None] = mapped_column(default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index(
            "ix_events_pending_next_attempt_at",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index(
            "ix_events_pending_subject_id_seq",
            "subject_id",
            "seq",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_events_state_seq", "state", "seq"),
        # Retention walks delivered events oldest first.
        Index(
            "ix_events_delivered_delivered_at",
            "delivered_at",
            postgresql_where=text("state = 'delivered'"),
            sqlite_where=text("state = 'delivered'"),
        ),
    )


def endpoint_key(url: str) -> str:
    """How an endpoint is named in the database: its URL, unless that carries a secret (user
    info, a query, a fragment: a token is often put there), in which case the URL without it
    and a SHA-256 of the whole URL, so the secret is never stored in clear."""
    parts = urlsplit(url)
    if not (parts.query or parts.fragment or parts.username or parts.password):
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return f"{parts.scheme}://{host}{port}{parts.path}#sha256:{digest}"


class WebhookEndpoint(Base):
    """A receiver, by `endpoint_key`; a 410 from it disables deliveries until an operator
    re-enables it."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)


# Idle workers LISTEN on this channel (PostgreSQL). The NOTIFY is sent after the event's
# transaction commits, by a background thread, never inside it: PostgreSQL serializes the
# commits of notifying transactions (a global queue lock held through the WAL flush), which
# would turn every change into a single file. Many commits close together share one NOTIFY.
# Should the process die between commit and NOTIFY, workers still find the event by polling.
EVENTS_CHANNEL = "tessera_events"
NOTIFY_GATHER_SECONDS = 0.005


class _Notifier:
    """One per engine: sends NOTIFY after commits that recorded events, coalescing bursts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.wanted = threading.Event()
        self.thread = threading.Thread(target=self._run, name="events-notify", daemon=True)
        self.thread.start()

    def poke(self) -> None:
        self.wanted.set()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            # Let a burst of commits gather first: at hundreds of changes a second this
            # sends one NOTIFY per few milliseconds instead of one per commit.
            time.sleep(NOTIFY_GATHER_SECONDS)
            self.wanted.clear()
            try:
                with self.engine.connect() as conn:
                    conn.execute(text(f"NOTIFY {EVENTS_CHANNEL}"))
                    conn.commit()
            except SQLAlchemyError:
                log.warning("could not notify workers; they will find events by polling")
                time.sleep(1)


_notifiers: dict[int, _Notifier] = {}
_notifiers_lock = threading.Lock()


@event.listens_for(Session, "after_commit")
def _wake_workers(session: Session) -> None:
    if not session.info.pop("events_recorded", False):
        return
    bind = session.get_bind()
    wake_workers(bind.engine if isinstance(bind, Connection) else bind)


def wake_workers(engine: Engine) -> None:
    """Tell idle delivery workers that events were committed (PostgreSQL; SQLite polls).
    Call after the commit, never before: the NOTIFY is sent from another connection."""
    if engine.dialect.name != "postgresql":
        return
    with _notifiers_lock:
        notifier = _notifiers.get(id(engine.pool))
        if notifier is None:
            notifier = _notifiers[id(engine.pool)] = _Notifier(engine)
    notifier.poke()


@event.listens_for(Session, "after_rollback")
def _forget_events(session: Session) -> None:
    session.info.pop("events_recorded", None)


def event_values(
    event_type: EventType, subject_id: uuid.UUID, data: dict[str, Any]
) -> dict[str, Any]:
    """The columns of a new event row, its payload (the webhook body) included."""
    now = utcnow()
    event_id = uuid.uuid4()
    return {
        "id": event_id,
        "type": event_type.value,
        "subject_id": subject_id,
        "payload": {
            "id": str(event_id),
            "type": event_type.value,
            "timestamp": rfc3339(now),
            "data": data,
        },
        "created_at": now,
        "next_attempt_at": now,
        "state": EventState.PENDING.value,
        "attempts": 0,
    }


def record_event(
    session: Session, event_type: EventType, subject_id: uuid.UUID, data: dict[str, Any]
) -> Event:
    """Add an event to the session; it commits, or rolls back, with the change it reports."""
    event = Event(**event_values(event_type, subject_id, data))
    session.add(event)
    session.info["events_recorded"] = True  # wake the workers once this commits
    return event
