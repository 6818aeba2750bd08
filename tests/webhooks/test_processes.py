"""Real worker processes: killed mid-batch, and two at once on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from schema.db import make_sessionmaker
from schema.events import Event, EventType, record_event
from tests.conftest import postgres_only
from tests.webhooks.conftest import World
from tests.webhooks.receiver import Receiver


def worker_process(world: World, url: str, **env: str) -> subprocess.Popen[bytes]:
    settings = {
        "DATABASE_URL": world.database_url,
        "VAR_DIR": str(world.var_dir),
        "WEBHOOK_URL": url,
        "WEBHOOK_POLL_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
        "WEBHOOK_BACKOFF_CAP_SECONDS": "0.5",
        "WEBHOOK_TIMEOUT_SECONDS": "5",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ca_admin.cli", "worker"],
        env={**os.environ, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def seed_events(world: World, subjects: int, per_subject: int) -> dict[uuid.UUID, list[str]]:
    """Events written as the services write them, in order per subject."""
    expected: dict[uuid.UUID, list[str]] = {}
    with make_sessionmaker(world.engine)() as session:
        ids = [uuid.uuid4() for _ in range(subjects)]
        for step in range(per_subject):
            for subject in ids:
                event = record_event(
                    session,
                    EventType.CERTIFICATE_ACTIVATED,
                    subject,
                    {"certificate_id": str(subject), "step": step},
                )
                expected.setdefault(subject, []).append(str(event.id))
        session.commit()
    return expected


def delivered_order(receiver: Receiver) -> dict[str, list[str]]:
    order: dict[str, list[str]] = defaultdict(list)
    for delivery in receiver.received():
        subject = delivery.payload["data"]["certificate_id"]
        if delivery.event_id not in order[subject]:
            order[subject].append(delivery.event_id)
    return order


def test_a_worker_killed_mid_batch_loses_nothing(world: World, receiver: Receiver) -> None:
    receiver.answer = lambda _d: (200, {}, 0.3)  # slow enough to be killed mid-delivery
    expected = seed_events(world, subjects=20, per_subject=2)
    first = worker_process(world, receiver.url, WEBHOOK_LEASE_SECONDS="2")
    receiver.wait_for(lambda got: len(got) >= 3)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    with world.engine.connect() as conn:
        pending = conn.execute(select(func.count()).where(Event.state == "pending")).scalar_one()
    assert pending > 0, "the kill came too late to test anything"
    second = worker_process(world, receiver.url, WEBHOOK_LEASE_SECONDS="2")
    try:
        receiver.answer = lambda _d: (200, {}, 0.0)
        all_ids = {eid for ids in expected.values() for eid in ids}
        receiver.wait_for(lambda got: {d.event_id for d in got} >= all_ids, seconds=40)
    finally:
        second.terminate()
        second.wait(timeout=10)
    order = delivered_order(receiver)
    assert {str(k): v for k, v in expected.items()} == dict(order)


@postgres_only
def test_two_workers_deliver_1000_events_none_lost_order_kept(
    world: World, receiver: Receiver
) -> None:
    expected = seed_events(world, subjects=100, per_subject=10)
    workers = [worker_process(world, receiver.url) for _ in range(2)]
    try:
        receiver.wait_for(lambda got: len({d.event_id for d in got}) >= 1000, seconds=120)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=15)
    assert {str(k): v for k, v in expected.items()} == dict(delivered_order(receiver))
    with world.engine.connect() as conn:
        states: Any = dict(
            conn.execute(select(Event.state, func.count()).group_by(Event.state)).all()
        )
    assert states == {"delivered": 1000}
    time.sleep(0)
