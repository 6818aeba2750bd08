"""Signed deliveries of every event type, retries, outages, order, slow receivers."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook

from certificate_api.database import open_database
from core import queries
from core.records import certificate_event_data
from schema.base import utcnow
from schema.certificates import Certificate
from schema.events import Event, EventType, event_values
from tests.webhooks.conftest import World
from tests.webhooks.receiver import Delivery, Receiver


def verify(world: World, delivery: Delivery) -> dict[str, Any]:
    """Check the signature with the scheme's published verifier; return the payload."""
    payload: dict[str, Any] = Webhook(world.secret).verify(delivery.body, delivery.headers)
    return payload


def test_every_event_type_arrives_once_and_verifies(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    customer = world.customer()
    cert = world.issue(customer)
    path = f"/api/certificates/{cert['id']}"
    assert (
        world.certs.patch(path, json={"is_active": False}, headers=customer.auth).status_code == 200
    )
    assert (
        world.certs.patch(path, json={"is_active": True}, headers=customer.auth).status_code == 200
    )
    assert (
        world.certs.post(
            f"{path}/revoke", json={"reason": "superseded"}, headers=customer.auth
        ).status_code
        == 200
    )
    assert (
        world.accounts.delete(f"/api/accounts/{customer.id}", headers=customer.auth).status_code
        == 204
    )
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) >= 5)
    time.sleep(0.3)  # nothing more should come
    deliveries = receiver.received()
    payloads = [verify(world, d) for d in deliveries]
    types = [p["type"] for p in payloads]
    assert sorted(types) == sorted(
        [
            "certificate.created",
            "certificate.deactivated",
            "certificate.activated",
            "certificate.revoked",
            "account.deleted",
        ]
    )
    assert len({d.event_id for d in deliveries}) == 5
    for delivery, payload in zip(deliveries, payloads, strict=True):
        assert payload["id"] == delivery.event_id
        assert payload["timestamp"].endswith("Z")
        data = payload["data"]
        if payload["type"].startswith("certificate."):
            assert data["certificate_id"] == cert["id"] and data["account_id"] == customer.id
            assert data["serial_number"] == cert["serial_number"]
            assert {"is_active", "status"} <= set(data)
    by_type = {p["type"]: p["data"] for p in payloads}
    assert by_type["certificate.deactivated"]["status"] == "inactive"
    assert by_type["certificate.deactivated"]["reason"] == "certificateHold"
    assert by_type["certificate.revoked"]["reason"] == "superseded"
    assert by_type["account.deleted"]["account_id"] == customer.id


def test_a_retry_hours_later_is_signed_afresh_and_verifies(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    answers = iter([(500, {}, 0.0)])
    receiver.answer = lambda _d: next(answers, (200, {}, 0.0))
    world.issue(world.customer())
    worker = run_worker(
        receiver.url, webhook_backoff_base_seconds=3600, webhook_backoff_cap_seconds=7200
    )
    receiver.wait_for(lambda got: len(got) == 1)
    worker.stop()
    time.sleep(0.3)
    # Three hours pass: the event is due again and its first signature long stale.
    with world.engine.begin() as conn:
        conn.execute(
            update(Event).values(created_at=utcnow() - timedelta(hours=3), next_attempt_at=utcnow())
        )
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) == 2)
    first, second = receiver.received()
    assert first.event_id == second.event_id
    # Signed at the moment of sending, not when the event was made three hours ago.
    assert abs(int(second.headers["webhook-timestamp"]) - time.time()) < 60
    verify(world, second)
    with pytest.raises(Exception, match=r"(?i)timestamp|too old"):
        # The first attempt's headers, seen now, are refused: the verifier checks freshness.
        Webhook(world.secret).verify(
            first.body,
            {
                **first.headers,
                "webhook-timestamp": str(int(first.headers["webhook-timestamp"]) - 3 * 3600),
            },
        )


def test_500_three_times_then_200_delivers_on_the_fourth_attempt(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    answers = iter([(500, {}, 0.0)] * 3)
    receiver.answer = lambda _d: next(answers, (200, {}, 0.0))
    world.issue(world.customer())
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) == 4)
    deliveries = receiver.received()
    assert len({d.event_id for d in deliveries}) == 1
    for delivery in deliveries:
        verify(world, delivery)
    time.sleep(0.3)
    with world.engine.connect() as conn:
        row = conn.execute(select(Event.state, Event.attempts, Event.last_status)).one()
    assert tuple(row) == ("delivered", 4, 200)
    assert len(receiver.received()) == 4


def test_a_receiver_that_is_down_then_back_gets_everything_in_order(
    world: World, run_worker: Any
) -> None:
    down = Receiver().start()
    port = down.port
    down.stop()  # the port is now closed: connections are refused
    customer = world.customer()
    ids = []
    for _ in range(3):
        cert = world.issue(customer)
        ids.append(cert["id"])
        for active in (False, True):
            world.certs.patch(
                f"/api/certificates/{cert['id']}", json={"is_active": active}, headers=customer.auth
            )
        world.certs.post(
            f"/api/certificates/{cert['id']}/revoke",
            json={"reason": "superseded"},
            headers=customer.auth,
        )
    run_worker(f"http://127.0.0.1:{port}/hook")
    time.sleep(1.0)  # several refused attempts happen meanwhile
    with world.engine.connect() as conn:
        attempts = conn.execute(select(func.sum(Event.attempts))).scalar_one()
    assert attempts >= 3
    back = Receiver(port=port).start()
    try:
        back.wait_for(lambda got: len({d.event_id for d in got}) == 12, seconds=30)
        order: dict[str, list[str]] = defaultdict(list)
        for delivery in back.received():
            payload = verify(world, delivery)
            order[payload["data"]["certificate_id"]].append(payload["type"])
        expected = [
            "certificate.created",
            "certificate.deactivated",
            "certificate.activated",
            "certificate.revoked",
        ]
        assert {cid: types for cid, types in order.items()} == {cid: expected for cid in ids}
    finally:
        back.stop()


def test_a_hanging_receiver_does_not_slow_the_api(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    receiver.answer = lambda _d: (200, {}, 5.0)
    customer = world.customer()
    cert = world.issue(customer)
    run_worker(receiver.url, webhook_timeout_seconds=3.0)
    receiver.wait_for(lambda got: len(got) >= 1)  # the worker is now stuck on the receiver
    latencies = []
    for active in (False, True, False):
        started = time.perf_counter()
        response = world.certs.patch(
            f"/api/certificates/{cert['id']}", json={"is_active": active}, headers=customer.auth
        )
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    assert max(latencies) < 1.0, latencies


def test_an_aborted_transaction_produces_no_event(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    customer = world.customer()
    cert = world.issue(customer)
    with world.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(Event)).scalar_one()

    async def fail_midway() -> None:
        """A hold whose request fails after its statements were sent, before the commit."""
        db = await open_database(world.engine, size=2, timeout=5)
        certificate_id, now = uuid.UUID(cert["id"]), utcnow()
        try:
            with contextlib.suppress(RuntimeError):
                async with db.transaction() as tx:
                    await tx.execute(
                        queries.SET_HOLD.statement,
                        certificate_id=certificate_id,
                        active=False,
                        hold_started=now,
                        by_admin=False,
                        changed_at=now,
                    )
                    row = await tx.one(queries.BY_ID, certificate_id=certificate_id)
                    assert row.is_active is False  # written, as far as this transaction sees
                    data = certificate_event_data(row, now)
                    await tx.execute(
                        queries.INSERT_EVENT,
                        **event_values(EventType.CERTIFICATE_DEACTIVATED, certificate_id, data),
                    )
                    await tx.one(queries.BY_ID, certificate_id=certificate_id)  # sent too
                    raise RuntimeError("the request fails")
        finally:
            await db.close()

    asyncio.run(fail_midway())
    with world.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(Event)).scalar_one()
        active = conn.execute(select(Certificate.is_active)).scalar_one()
    assert after == before and active is True
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) >= 1)
    time.sleep(0.3)
    assert [d.payload["type"] for d in receiver.received()] == ["certificate.created"]
