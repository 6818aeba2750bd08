"""Finalization's bookkeeping (RFC 8555 section 7.4): an order is claimed for signing once,
and how the signing ended is recorded. The signing itself is the core's issuance, called by
the edge between the two."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.acme.orders import owned_order
from core.acme.problems import AcmeProblem
from schema.acme import AcmeAccount, AcmeOrder, OrderStatus
from schema.base import utcnow

# A finalization whose process died is taken up again by the next finalize after this.
PROCESSING_STALE = timedelta(minutes=2)


def begin_finalize(session: Session, account: AcmeAccount, order_id: uuid.UUID) -> AcmeOrder:
    """Take a ready order into `processing` (committed), so only one finalization signs;
    `orderNotReady` otherwise. One left processing by a process that died is taken again."""
    order = owned_order(session, account, order_id, lock=True)
    now = utcnow()
    stale = order.status == OrderStatus.PROCESSING and order.updated_at < now - PROCESSING_STALE
    if order.status != OrderStatus.READY and not stale:
        raise AcmeProblem(
            "orderNotReady", f"the order is {order.status}, not ready: it cannot be finalized"
        )
    # Taken only if unchanged since read, as the update runs: without row locks (SQLite)
    # concurrent finalizations would all take it, and each sign.
    taken = session.scalar(
        update(AcmeOrder)
        .where(
            AcmeOrder.id == order.id,
            AcmeOrder.status == order.status,
            AcmeOrder.updated_at == order.updated_at,
        )
        .values(status=OrderStatus.PROCESSING.value, updated_at=now)
        .returning(AcmeOrder.id)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if taken is None:
        raise AcmeProblem("orderNotReady", "the order is being finalized by another request")
    # As the update left it, without marking the object changed (nothing more to write).
    set_committed_value(order, "status", OrderStatus.PROCESSING.value)
    set_committed_value(order, "updated_at", now)
    return order


def end_finalize(
    session: Session,
    order_id: uuid.UUID,
    certificate_id: uuid.UUID | None,
    problem: AcmeProblem | None,
) -> AcmeOrder:
    """Record how a finalization ended: valid with its certificate; back to `ready` for a
    CSR the client can fix; `invalid` for a refusal that no CSR would change."""
    order = session.get(AcmeOrder, order_id, with_for_update=True)
    assert order is not None
    order.updated_at = utcnow()
    if certificate_id is not None:
        order.status = OrderStatus.VALID.value
        order.certificate_id = certificate_id
    elif problem is not None and problem.kind in ("badCSR", "rateLimited", "serverInternal"):
        order.status = OrderStatus.READY.value
    else:
        order.status = OrderStatus.INVALID.value
        order.error = problem.body() if problem is not None else None
    session.commit()
    return order
