"""Retention: rows that have served their purpose are deleted, in small batches.

Each kind names its rows' key, the condition that makes a row expired, and an indexed
column to walk from the oldest. A batch is one short transaction deleting at most
`PRUNE_BATCH_SIZE` rows, picked with `FOR UPDATE SKIP LOCKED` (PostgreSQL) so a prune never
waits on, nor holds up, the services' writers for long. The expiry condition is applied
again by the DELETE itself, so a row that changed after it was picked is kept.

A new kind (expired domain validations, say) is one more entry in `KINDS`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from schema.accounts import LoginFailure
from schema.acme import AcmeEabKey, AcmeNonce, AcmeOrder
from schema.base import Base, utcnow
from schema.certificates import IdempotencyKey
from schema.events import Event, EventState
from schema.rates import LONGEST_WINDOW, RateCounter
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)
ACME_ORDER_RETENTION = timedelta(days=30)

# The condition that makes a row expired at `now`, or None when this kind is kept forever.
Expiry = Callable[[WorkerSettings, datetime], ColumnElement[bool] | None]


@dataclass(frozen=True)
class Kind:
    """One kind of row that expires."""

    name: str
    model: type[Base]
    key: tuple[InstrumentedAttribute[Any], ...]  # the primary key: how a batch names its rows
    oldest_first: InstrumentedAttribute[Any]  # indexed, so each batch finds its rows at once
    expired: Expiry


def _delivered_events(settings: WorkerSettings, now: datetime) -> ColumnElement[bool] | None:
    # Only delivered events: a pending or failed one is never deleted, whatever its age.
    days = settings.retain_delivered_events_days
    if not days:
        return None
    return (Event.state == EventState.DELIVERED.value) & (
        Event.delivered_at < now - timedelta(days=days)
    )


def _login_failures(settings: WorkerSettings, now: datetime) -> ColumnElement[bool] | None:
    days = settings.retain_login_failures_days
    if not days:
        return None
    return LoginFailure.failed_at < now - timedelta(days=days)


def _idempotency_keys(settings: WorkerSettings, now: datetime) -> ColumnElement[bool] | None:
    # Past its TTL a key is ignored by the service already (and replaced when reused).
    return IdempotencyKey.created_at < now - timedelta(hours=settings.idempotency_ttl_hours)


def _used_nonces(_settings: WorkerSettings, now: datetime) -> ColumnElement[bool]:
    # Past its expiry a nonce is refused by its age: its row no longer needs to say "used".
    return AcmeNonce.expires_at < now


def _expired_acme_orders(_settings: WorkerSettings, now: datetime) -> ColumnElement[bool]:
    # An order a month past its expiry is no client's business any more; its authorizations
    # and challenges go with it (ON DELETE CASCADE); its certificate stays.
    return AcmeOrder.expires_at < now - ACME_ORDER_RETENTION


def _expired_eab_keys(_settings: WorkerSettings, now: datetime) -> ColumnElement[bool]:
    # Unused and expired: it can never bind an account. A used one is kept (which binding
    # made which ACME account).
    return and_(AcmeEabKey.expires_at < now, AcmeEabKey.used_at.is_(None))


def _stale_rate_counters(_settings: WorkerSettings, now: datetime) -> ColumnElement[bool]:
    # A window no limit counts in any more (a later hit would start the row again at 1).
    return RateCounter.window_start < now - LONGEST_WINDOW


KINDS: tuple[Kind, ...] = (
    Kind("delivered_events", Event, (Event.seq,), Event.delivered_at, _delivered_events),
    Kind(
        "login_failures",
        LoginFailure,
        (LoginFailure.id,),
        LoginFailure.failed_at,
        _login_failures,
    ),
    Kind(
        "expired_idempotency_keys",
        IdempotencyKey,
        (IdempotencyKey.account_id, IdempotencyKey.operation, IdempotencyKey.key),
        IdempotencyKey.created_at,
        _idempotency_keys,
    ),
    Kind("used_acme_nonces", AcmeNonce, (AcmeNonce.nonce,), AcmeNonce.expires_at, _used_nonces),
    Kind(
        "expired_acme_orders",
        AcmeOrder,
        (AcmeOrder.id,),
        AcmeOrder.expires_at,
        _expired_acme_orders,
    ),
    Kind(
        "expired_eab_keys",
        AcmeEabKey,
        (AcmeEabKey.key_id,),
        AcmeEabKey.expires_at,
        _expired_eab_keys,
    ),
    # Not indexed on window_start: the table has one row per counted key, and an index on a
    # column every hit's UPDATE changes would cost each hit PostgreSQL's in-place update.
    Kind(
        "stale_rate_counters",
        RateCounter,
        (RateCounter.scope, RateCounter.key),
        RateCounter.window_start,
        _stale_rate_counters,
    ),
)


def prune_batch(session: Session, kind: Kind, condition: ColumnElement[bool], size: int) -> int:
    """Delete at most `size` expired rows of one kind in one transaction; how many went."""
    picked = (
        select(*kind.key)
        .where(condition)
        .order_by(kind.oldest_first)
        .limit(size)
        .with_for_update(skip_locked=True)
        .cte("picked")
        # Computed once: as a plain IN (subquery) PostgreSQL may rescan it for every row,
        # and each rescan skips the rows already deleted and picks the next ones.
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    chosen = select(*picked.c)
    target = kind.key[0] if len(kind.key) == 1 else tuple_(*kind.key)
    # RETURNING counts the rows: SQLite reports no rowcount for a DELETE behind a WITH.
    gone = session.execute(
        delete(kind.model).where(target.in_(chosen), condition).returning(kind.key[0]),
        execution_options={"synchronize_session": False},
    ).all()
    session.commit()
    return len(gone)


def prune(
    sessions: sessionmaker[Session],
    settings: WorkerSettings,
    stopping: threading.Event | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete every expired row of every kind, batch by batch; rows deleted per kind.

    Stops between batches once `stopping` is set (the rest waits for the next run).
    """
    now = now or utcnow()
    size = settings.prune_batch_size
    deleted: dict[str, int] = {}
    for kind in KINDS:
        condition = kind.expired(settings, now)
        deleted[kind.name] = 0
        while condition is not None and not (stopping and stopping.is_set()):
            with sessions() as session:
                count = prune_batch(session, kind, condition, size)
            deleted[kind.name] += count
            if count < size:
                break
        if deleted[kind.name]:
            log.info("pruned expired rows", extra={"kind": kind.name, "rows": deleted[kind.name]})
    return deleted
