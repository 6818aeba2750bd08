"""`certificate.expiring`: exactly one event per certificate still active EXPIRY_NOTICE_DAYS
before its notAfter, with several worker processes and restarts; none for held or revoked
certificates."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from schema.db import make_sessionmaker
from schema.events import Event
from tests.conftest import postgres_only
from tests.webhooks.conftest import World
from tests.webhooks.receiver import Delivery, Receiver
from tests.webhooks.test_processes import worker_process
from worker.expiry import record_expiry_notices

EXPIRING = "certificate.expiring"
WORKER_ENV = {"EXPIRY_NOTICE_DAYS": "2", "EXPIRY_CHECK_SECONDS": "0.05", "EXPIRY_BATCH_SIZE": "3"}


def notified(deliveries: list[Delivery]) -> set[str]:
    """The certificates that a received certificate.expiring was about."""
    return {
        d.payload["data"]["certificate_id"] for d in deliveries if d.payload["type"] == EXPIRING
    }


def expiring_events(world: World) -> Counter[str]:
    """How many certificate.expiring events each certificate has in the outbox."""
    with world.engine.connect() as conn:
        subjects = conn.execute(select(Event.subject_id).where(Event.type == EXPIRING)).scalars()
        return Counter(str(subject) for subject in subjects)


def test_a_second_pass_records_nothing_new_and_held_or_revoked_get_none(world: World) -> None:
    customer = world.customer()
    due = world.issue(customer, validity_days=1)
    held = world.issue(customer, validity_days=1)
    revoked = world.issue(customer, validity_days=1)
    later = world.issue(customer, validity_days=30)
    patched = world.certs.patch(
        f"/api/certificates/{held['id']}", json={"is_active": False}, headers=customer.auth
    )
    assert patched.status_code == 200
    gone = world.certs.post(
        f"/api/certificates/{revoked['id']}/revoke",
        json={"reason": "superseded"},
        headers=customer.auth,
    )
    assert gone.status_code == 200
    with make_sessionmaker(world.engine)() as session:
        assert record_expiry_notices(session, timedelta(days=2), limit=100) == 1
        assert record_expiry_notices(session, timedelta(days=2), limit=100) == 0
    assert expiring_events(world) == {due["id"]: 1}
    with world.engine.connect() as conn:
        (payload,) = conn.execute(select(Event.payload).where(Event.type == EXPIRING)).scalars()
    assert payload["data"]["certificate_id"] == due["id"]
    assert payload["data"]["status"] == "active"
    assert payload["data"]["not_after"] == due["not_after"]
    assert later["id"] not in expiring_events(world)


@postgres_only
def test_exactly_one_notice_per_certificate_with_two_workers_and_a_restart(
    world: World,
    receiver: Receiver,
) -> None:
    customer = world.customer()
    due = [world.issue(customer, validity_days=1)["id"] for _ in range(24)]
    held = world.issue(customer, validity_days=1)["id"]
    patched = world.certs.patch(
        f"/api/certificates/{held}", json={"is_active": False}, headers=customer.auth
    )
    assert patched.status_code == 200

    # Two workers race over the same due certificates, three at a time each.
    workers = [worker_process(world, receiver.url, **WORKER_ENV) for _ in range(2)]
    try:
        receiver.wait_for(lambda got: len(notified(got)) >= 1)
        # One is killed outright and replaced, while the other keeps going.
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        workers[0] = worker_process(world, receiver.url, **WORKER_ENV)
        receiver.wait_for(lambda got: notified(got) >= set(due), seconds=60)
        # A certificate that becomes due after the restart is seen by the restarted pair:
        # they have made passes over everything above since.
        late = world.issue(customer, validity_days=1)["id"]
        receiver.wait_for(lambda got: late in notified(got))
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=15)

    assert expiring_events(world) == dict.fromkeys([*due, late], 1)
    webhook_ids: dict[str, set[str]] = {}
    for delivery in receiver.received():
        if delivery.payload["type"] == EXPIRING:
            webhook_ids.setdefault(delivery.payload["data"]["certificate_id"], set()).add(
                delivery.event_id
            )
    assert {cert: len(ids) for cert, ids in webhook_ids.items()} == dict.fromkeys([*due, late], 1)
    assert held not in webhook_ids
