"""The claim query on the real database (worker/validation_queue.py): the oldest request of
the customer with the fewest in flight, across REST validations and ACME challenges (an ACME
one counting for its customer), ties taken in turn, and never more than max(1, slots / 2) in
flight for one customer, whichever worker holds them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core import validation
from schema.accounts import Account
from schema.acme import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder
from schema.base import utcnow
from schema.db import make_engine, make_sessionmaker
from schema.domains import DomainAuthorization
from tests.conftest import Databases
from worker.validation_queue import Job, cap, claim_next

LEASE = timedelta(seconds=25)
START = utcnow() - timedelta(hours=1)


@pytest.fixture
def session(databases: Databases) -> Iterator[Session]:
    """A session on a database of its own: nothing else is queued there."""
    engine = make_engine(databases.create())
    with make_sessionmaker(engine)() as opened:
        yield opened
    engine.dispose()


class Queue:
    """Customers and their validations, asked for at `START` plus the given minutes."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.names: dict[uuid.UUID, str] = {}  # request id -> "customer:label"

    def customer(self, label: str) -> uuid.UUID:
        account = Account(
            email=f"{label}-{uuid.uuid4().hex[:8]}@example.com",
            name=label,
            password_hash="-",
        )
        account.email_key = account.email
        self.session.add(account)
        self.session.flush()
        return account.id

    def rest(self, customer: uuid.UUID, label: str, minute: int) -> uuid.UUID:
        row = DomainAuthorization(
            account_id=customer,
            name=f"{label}-{uuid.uuid4().hex[:8]}.test",
            include_subdomains=False,
            status="pending",
            token=validation.new_token(),
            expires_at=utcnow() + timedelta(days=7),
            validation_type="http-01",
            validation_requested_at=START + timedelta(minutes=minute),
        )
        self.session.add(row)
        self.session.flush()
        self.names[row.id] = label
        return row.id

    def acme(self, customer: uuid.UUID, label: str, minute: int) -> uuid.UUID:
        """An answered challenge of an ACME account acting for the customer."""
        account = AcmeAccount(
            account_id=customer, thumbprint=uuid.uuid4().hex, jwk={}, eab_key_id="-"
        )
        self.session.add(account)
        self.session.flush()
        order = AcmeOrder(
            acme_account_id=account.id, identifiers=[], expires_at=utcnow() + timedelta(days=7)
        )
        self.session.add(order)
        self.session.flush()
        authz = AcmeAuthorization(
            order_id=order.id,
            identifier_type="dns",
            value=f"{label}-{uuid.uuid4().hex[:8]}.test",
            expires_at=utcnow() + timedelta(days=7),
        )
        self.session.add(authz)
        self.session.flush()
        challenge = AcmeChallenge(
            authorization_id=authz.id,
            type="http-01",
            token=validation.new_token(),
            status="processing",
            thumbprint="-",
            requested_at=START + timedelta(minutes=minute),
        )
        self.session.add(challenge)
        self.session.flush()
        self.names[challenge.id] = label
        return challenge.id

    def claim(self, slots: int, now: datetime | None = None) -> str | None:
        """What the next claim takes (its label), committed as a worker's would be."""
        self.session.commit()
        job: Job | None = claim_next(self.session, slots, LEASE, now)
        return None if job is None else self.names[job.id]


def test_fewest_in_flight_first_then_turns_and_at_most_half_the_slots(session: Session) -> None:
    queue = Queue(session)
    a, b, c = queue.customer("a"), queue.customer("b"), queue.customer("c")
    # A asked first and most; one of its requests is an ACME challenge. B and C asked later.
    for minute in range(5):
        queue.rest(a, f"a{minute}", minute)
    queue.acme(a, "a-acme", 2)  # older than a3 and a4, newer than a2 (same minute, REST first)
    queue.rest(b, "b0", 10)
    queue.rest(b, "b1", 11)
    queue.acme(b, "b-acme", 12)
    queue.rest(c, "c0", 20)
    assert cap(4) == 2

    taken = [queue.claim(slots=4) for _ in range(7)]
    assert taken == [
        "a0",  # nothing in flight anywhere, nobody served yet: the oldest request
        "b0",  # A has 1 in flight; B and C none, B asked first
        "c0",
        "a1",  # all at 1 (C has nothing more): A's turn came longest ago
        "b1",
        None,  # A and B at the cap of 2, C has nothing waiting
        None,
    ]
    # An ACME challenge counts for its customer: B's ACME one waits behind B's cap, and is
    # its next once a REST validation of B settles.
    session.execute(
        update(DomainAuthorization)
        .where(DomainAuthorization.account_id == b, DomainAuthorization.name.startswith("b0-"))
        .values(status="valid", validation_leased_until=None)
    )
    assert queue.claim(slots=4) == "b-acme"
    assert queue.claim(slots=4) is None
    # A lease that ran out (a worker died) is no longer in flight: A, with one left in
    # flight, goes again, with its oldest waiting request, a1 taken again.
    later = utcnow() + LEASE + timedelta(seconds=1)
    session.execute(
        update(DomainAuthorization)
        .where(DomainAuthorization.validation_leased_until.is_not(None))
        .values(validation_leased_until=later + LEASE)  # every other lease still runs
    )
    session.execute(
        update(AcmeChallenge)
        .where(AcmeChallenge.leased_until.is_not(None))
        .values(leased_until=later + LEASE)
    )
    session.execute(
        update(DomainAuthorization)
        .where(DomainAuthorization.name.startswith("a1-"))
        .values(validation_leased_until=later - timedelta(seconds=1))
    )
    assert queue.claim(slots=4, now=later) == "a1"
    assert queue.claim(slots=4, now=later) is None  # A at 2 again


def test_with_one_slot_customers_alternate(session: Session) -> None:
    """max(1, 1 / 2) = 1: a customer with a backlog takes every other turn at most, so a
    customer who asks later is next as soon as the slot frees."""
    queue = Queue(session)
    a, b = queue.customer("a"), queue.customer("b")
    for minute in range(3):
        queue.rest(a, f"a{minute}", minute)
    assert queue.claim(slots=1) == "a0"
    assert queue.claim(slots=1) is None  # the one slot: A is at its cap
    queue.rest(b, "b0", 30)
    taken = []
    for _ in range(4):
        settle_all(session)
        taken.append(queue.claim(slots=1))
    assert taken == ["b0", "a1", "a2", None]  # B first: A was served last


def test_the_cap_holds_across_workers(session: Session) -> None:
    """In flight counts leases whichever worker holds them: a customer leased up to the cap
    by other workers gets nothing more from this one."""
    queue = Queue(session)
    a = queue.customer("a")
    for minute in range(4):
        queue.rest(a, f"a{minute}", minute)
    session.execute(  # two leases held elsewhere
        update(DomainAuthorization)
        .where(
            DomainAuthorization.name.startswith("a0-") | DomainAuthorization.name.startswith("a1-")
        )
        .values(validation_leased_until=utcnow() + LEASE)
    )
    assert queue.claim(slots=4) is None
    assert queue.claim(slots=6) == "a2"  # a worker of 6 slots allows 3


def settle_all(session: Session) -> None:
    """What recording every outcome does to the queue: nothing leased is pending any more."""
    session.execute(
        update(DomainAuthorization)
        .where(DomainAuthorization.validation_leased_until.is_not(None))
        .values(status="valid", validation_leased_until=None)
    )
    session.execute(
        update(AcmeChallenge)
        .where(AcmeChallenge.leased_until.is_not(None))
        .values(status="valid", leased_until=None)
    )
    session.commit()
