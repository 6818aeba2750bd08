"""Which waiting validation a worker takes next: fairly across customers.

The queue is two tables: REST domain validations (`domain_authorizations` with
`validation_type` set while `pending`) and ACME challenges clients answered
(`acme_challenges` `processing`), an ACME one counting for its customer (the REST account
the ACME account acts for). A validation is in flight while its lease runs (whichever worker
holds it), waiting otherwise.

`claim_next` takes one validation: the oldest waiting one of the customer with the fewest in
flight; among customers with as many, the one whose turn came longest ago
(`validation_turns`), then the one waiting longest. No customer has more than
`cap(slots)` = max(1, slots / 2) in flight, so a backlog of one customer leaves room for
the others, and a validation asked for by a customer with nothing in flight is taken as soon
as any slot frees.

Workers agree through the database alone (no session state, so it runs through PgBouncer in
transaction mode): the claim locks the customer's account row (`FOR NO KEY UPDATE SKIP
LOCKED`, which inserts referencing the account do not wait for), counts what the customer
has in flight again under that lock, and leases the row under `FOR UPDATE SKIP LOCKED`. Two
workers never claim for one customer at once, so the cap holds across workers. On SQLite,
where row locks do not exist, the single writer serializes the writes and the lease update
still only takes a row no live lease holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, null, or_, select, union_all, update
from sqlalchemy.orm import Session

from core.acme.challenges import ClaimedChallenge
from schema.accounts import Account
from schema.acme import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder, ChallengeStatus
from schema.base import utcnow
from schema.domains import DomainAuthorization, DomainStatus, ValidationTurn

# Customers tried per claim: those at the head of the order, when another worker holds one.
CANDIDATES = 8

DA = DomainAuthorization
CH = AcmeChallenge


@dataclass(frozen=True)
class Claimed:
    """A REST domain validation this worker holds the lease on."""

    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    include_subdomains: bool
    kind: str
    token: str


Job = Claimed | ClaimedChallenge


def cap(slots: int) -> int:
    """The most validations one customer may have in flight, for a worker of `slots`."""
    return max(1, slots // 2)


def claim_next(
    session: Session, slots: int, lease: timedelta, now: datetime | None = None
) -> Job | None:
    """Lease the next validation to check (see the module's doc), or None when nothing is
    waiting for a customer below the cap. Commits what it claims."""
    now = now or utcnow()
    limit = cap(slots)
    customers = session.scalars(_ranking(now, limit)).all()
    session.rollback()
    for customer in customers:
        job = claim_for(session, customer, now, now + lease, limit)
        if job is not None:
            session.commit()
            return job
        session.rollback()
    return None


def claim_for(
    session: Session,
    customer: uuid.UUID,
    now: datetime,
    until: datetime,
    limit: int | None = None,
) -> Job | None:
    """Lease the customer's oldest waiting validation (REST or ACME) until `until`, if no
    other worker is claiming for the customer and it has fewer than `limit` in flight (no
    limit: None). Marks the customer's turn. The caller commits."""
    locked = session.scalar(
        select(Account.id)
        .where(Account.id == customer)
        .with_for_update(key_share=True, skip_locked=True)
    )
    if locked is None:
        return None  # another worker is claiming for this customer (or it is gone)
    if limit is not None and in_flight(session, customer, now) >= limit:
        return None
    job = _lease_oldest(session, customer, now, until)
    if job is None:
        return None
    turned = session.execute(
        update(ValidationTurn).where(ValidationTurn.account_id == customer).values(claimed_at=now)
    )
    if not getattr(turned, "rowcount", 0):
        session.add(ValidationTurn(account_id=customer, claimed_at=now))
    return job


def in_flight(session: Session, customer: uuid.UUID, now: datetime) -> int:
    """How many validations of the customer some worker holds a live lease on."""
    rest = session.scalar(
        select(func.count())
        .select_from(DA)
        .where(DA.account_id == customer, *_rest_queued(), DA.validation_leased_until >= now)
    )
    acme = session.scalar(
        _acme_of(select(func.count()).select_from(CH), customer).where(
            CH.status == ChallengeStatus.PROCESSING.value, CH.leased_until >= now
        )
    )
    return int(rest or 0) + int(acme or 0)


def _rest_queued() -> tuple[Any, ...]:
    return (DA.status == DomainStatus.PENDING.value, DA.validation_type.is_not(None))


def _rest_waiting(now: datetime) -> Any:
    free = or_(DA.validation_leased_until.is_(None), DA.validation_leased_until < now)
    return and_(free, DA.expires_at > now)


def _acme_waiting(now: datetime) -> Any:
    return or_(CH.leased_until.is_(None), CH.leased_until < now)


def _acme_of(query: Any, customer: uuid.UUID | None = None) -> Any:
    """`query` on challenges joined up to the ACME account (of `customer`, if given)."""
    query = (
        query.join(AcmeAuthorization, AcmeAuthorization.id == CH.authorization_id)
        .join(AcmeOrder, AcmeOrder.id == AcmeAuthorization.order_id)
        .join(AcmeAccount, AcmeAccount.id == AcmeOrder.acme_account_id)
    )
    return query if customer is None else query.where(AcmeAccount.account_id == customer)


def _ranking(now: datetime, limit: int) -> Any:
    """Customers with a waiting validation and fewer than `limit` in flight, best first."""
    rest = select(
        DA.account_id.label("customer"),
        case((DA.validation_leased_until >= now, 1), else_=0).label("busy"),
        case((_rest_waiting(now), DA.validation_requested_at), else_=null()).label("since"),
    ).where(*_rest_queued())
    acme = _acme_of(
        select(
            AcmeAccount.account_id,
            case((CH.leased_until >= now, 1), else_=0),
            case((_acme_waiting(now), CH.requested_at), else_=null()),
        ).select_from(CH)
    ).where(CH.status == ChallengeStatus.PROCESSING.value)
    queue = union_all(rest, acme).subquery()
    per_customer = (
        select(
            queue.c.customer,
            func.sum(queue.c.busy).label("in_flight"),
            func.min(queue.c.since).label("oldest"),
        )
        .group_by(queue.c.customer)
        .subquery()
    )
    return (
        select(per_customer.c.customer)
        .outerjoin(ValidationTurn, ValidationTurn.account_id == per_customer.c.customer)
        .where(per_customer.c.in_flight < limit, per_customer.c.oldest.is_not(None))
        .order_by(
            per_customer.c.in_flight,
            ValidationTurn.claimed_at.asc().nulls_first(),
            per_customer.c.oldest,
        )
        .limit(CANDIDATES)
    )


EARLIEST = datetime.min.replace(tzinfo=UTC)


def _lease_oldest(
    session: Session, customer: uuid.UUID, now: datetime, until: datetime
) -> Job | None:
    row = session.scalars(
        select(DA)
        .where(DA.account_id == customer, *_rest_queued(), _rest_waiting(now))
        .order_by(DA.validation_requested_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    answered = session.execute(
        _acme_of(select(CH, AcmeAuthorization.value, AcmeAuthorization.wildcard), customer)
        .where(CH.status == ChallengeStatus.PROCESSING.value, _acme_waiting(now))
        .order_by(CH.requested_at)
        .limit(1)
        .with_for_update(of=CH, skip_locked=True)
    ).first()
    if row is not None and (
        answered is None
        or (row.validation_requested_at or EARLIEST) <= (answered[0].requested_at or EARLIEST)
    ):
        assert row.validation_type is not None
        row.validation_leased_until = until
        row.validation_attempts += 1
        return Claimed(
            row.id, row.account_id, row.name, row.include_subdomains, row.validation_type, row.token
        )
    if answered is None:
        return None
    challenge, value, wildcard = answered
    challenge.leased_until = until
    challenge.attempts += 1
    return ClaimedChallenge(
        challenge.id, challenge.type, challenge.token, challenge.thumbprint or "", value, wildcard
    )
