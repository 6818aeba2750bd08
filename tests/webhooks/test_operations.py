"""410, Retry-After, an unset WEBHOOK_URL, operators' requeue and metrics."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from schema.base import utcnow
from schema.db import make_sessionmaker
from schema.events import Event, WebhookEndpoint
from tests.webhooks.conftest import World
from tests.webhooks.receiver import Receiver
from worker import outbox


def test_410_stops_deliveries_until_an_operator_re_enables(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    receiver.answer = lambda _d: (410, {}, 0.0)
    customer = world.customer()
    world.issue(customer)
    world.issue(customer)
    # One delivery at a time, so "nothing after the 410" is exact (in-flight ones may finish).
    worker = run_worker(receiver.url, webhook_concurrency=1)
    receiver.wait_for(lambda got: len(got) >= 1)
    time.sleep(0.5)
    assert len(receiver.received()) == 1  # no further attempt after the 410
    with world.engine.connect() as conn:
        disabled = conn.execute(select(WebhookEndpoint.disabled_at)).scalar_one()
        states = conn.execute(select(Event.state)).scalars().all()
    assert disabled is not None and set(states) == {"pending"}
    receiver.answer = lambda _d: (200, {}, 0.0)
    with make_sessionmaker(world.engine)() as session:
        assert outbox.enable_endpoint(session, receiver.url)
    receiver.wait_for(lambda got: len({d.event_id for d in got}) == 2)
    worker.stop()


def test_retry_after_on_429_is_honoured(world: World, receiver: Receiver, run_worker: Any) -> None:
    receiver.answer = lambda _d: (429, {"Retry-After": "120"}, 0.0)
    world.issue(world.customer())
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) == 1)
    time.sleep(0.3)
    with world.engine.connect() as conn:
        row = conn.execute(select(Event.next_attempt_at, Event.attempts, Event.last_status)).one()
    wait = (row.next_attempt_at - utcnow()).total_seconds()
    assert 100 < wait <= 120 and row.attempts == 1 and row.last_status == 429
    assert len(receiver.received()) == 1


def test_events_are_kept_without_webhook_url_and_sent_once_it_is_set(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    world.issue(world.customer())
    idle = run_worker(None)
    time.sleep(0.4)
    idle.stop()
    with world.engine.connect() as conn:
        assert conn.execute(select(Event.state, Event.attempts)).one() == ("pending", 0)
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) == 1)


def test_an_event_past_its_retry_window_is_failed_and_can_be_requeued(
    world: World, receiver: Receiver, run_worker: Any
) -> None:
    receiver.answer = lambda _d: (500, {}, 0.0)
    world.issue(world.customer())
    with world.engine.begin() as conn:
        conn.execute(update(Event).values(created_at=utcnow() - timedelta(hours=27)))
    worker = run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) == 1)
    time.sleep(0.3)
    worker.stop()
    with world.engine.connect() as conn:
        row = conn.execute(select(Event.state, Event.last_error)).one()
    assert row.state == "failed" and row.last_error == "HTTP 500"
    receiver.answer = lambda _d: (200, {}, 0.0)
    with make_sessionmaker(world.engine)() as session:
        assert outbox.counts(session)["failed"] == 1
        assert outbox.requeue(session, None, timedelta(hours=24)) == 1
    run_worker(receiver.url)
    receiver.wait_for(lambda got: len(got) == 2)
    time.sleep(0.3)
    with world.engine.connect() as conn:
        assert conn.execute(select(Event.state)).scalar_one() == "delivered"


def test_an_endpoint_url_carrying_a_secret_is_stored_by_digest(world: World) -> None:
    secret_url = "https://hooks.example.com/in?token=s3cret-value"
    with make_sessionmaker(world.engine)() as session:
        outbox.disable_endpoint(session, secret_url, "410", utcnow())
        session.commit()
        assert outbox.endpoint_disabled(session, secret_url) is not None
        assert outbox.endpoint_disabled(session, "https://hooks.example.com/in?token=x") is None
    with world.engine.connect() as conn:
        stored = conn.execute(select(WebhookEndpoint.url)).scalars().all()
    assert len(stored) == 1 and "s3cret" not in stored[0]
    assert stored[0].startswith("https://hooks.example.com/in#sha256:")
    with make_sessionmaker(world.engine)() as session:
        assert outbox.enable_endpoint(session, secret_url)
