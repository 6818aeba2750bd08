"""Retention: expired rows go in small batches, on the worker's schedule and by command;
an undelivered or failed event never goes."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from click.testing import CliRunner
from sqlalchemy import event, func, insert, select, update

from ca_admin.cli import main
from core.acme.nonces import NONCE_TTL, Nonces
from schema.accounts import LoginFailure
from schema.acme import AcmeAccount, AcmeAuthorization, AcmeEabKey, AcmeNonce, AcmeOrder
from schema.base import utcnow
from schema.certificates import IdempotencyKey
from schema.db import make_sessionmaker
from schema.events import Event, EventType, event_values
from schema.rates import LONGEST_WINDOW, RateCounter
from tests.webhooks.conftest import World
from worker import retention
from worker.schedule import Job, Schedule

DAY = timedelta(days=1)


def add_event(world: World, state: str, age: timedelta, delivered: bool) -> uuid.UUID:
    """An event created `age` ago, in `state`, delivered `age` ago when `delivered`."""
    then = utcnow() - age
    values = event_values(EventType.CERTIFICATE_ACTIVATED, uuid.uuid4(), {"n": 1})
    values.update(created_at=then, next_attempt_at=then, state=state)
    if delivered:
        values["delivered_at"] = then
    with world.engine.begin() as conn:
        conn.execute(insert(Event).values(**values))
    event_id: uuid.UUID = values["id"]
    return event_id


def add_login_failure(world: World, age: timedelta) -> None:
    with world.engine.begin() as conn:
        conn.execute(
            insert(LoginFailure).values(
                email_key="x@example.com", client="127.0.0.1", failed_at=utcnow() - age
            )
        )


def remembered_key(world: World, key: str, age: timedelta) -> None:
    """An Idempotency-Key remembered by a real issuance, then aged."""
    customer = world.customer()
    reply = world.certs.post(
        "/api/certificates",
        json={"common_name": "kept.example.com"},
        headers={**customer.auth, "Idempotency-Key": key},
    )
    assert reply.status_code == 201, reply.text
    with world.engine.begin() as conn:
        conn.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(created_at=utcnow() - age)
        )


def event_ids(world: World) -> set[uuid.UUID]:
    with world.engine.connect() as conn:
        return set(conn.scalars(select(Event.id)))


def seed_every_kind(world: World) -> dict[str, Any]:
    return {
        "old_delivered": add_event(world, "delivered", 40 * DAY, delivered=True),
        "kept": {
            add_event(world, "delivered", 2 * DAY, delivered=True),
            add_event(world, "pending", 400 * DAY, delivered=False),
            add_event(world, "failed", 400 * DAY, delivered=False),
            # Pending again with an old delivery time (never so today): still not deleted.
            add_event(world, "pending", 400 * DAY, delivered=True),
        },
    }


def test_prune_deletes_only_what_expired_and_never_an_undelivered_event(world: World) -> None:
    seeded = seed_every_kind(world)
    for age in (10 * DAY, timedelta(hours=1)):
        add_login_failure(world, age)
    remembered_key(world, "old-key", timedelta(hours=25))
    remembered_key(world, "fresh-key", timedelta(hours=23))
    before = event_ids(world)

    settings = world.worker_settings(None)
    deleted = retention.prune(make_sessionmaker(world.engine), settings)

    assert deleted == {
        "delivered_events": 1,
        "login_failures": 1,
        "expired_idempotency_keys": 1,
        "stale_rate_counters": 0,  # the sign-ups' and issuances' counts of this window
        "used_acme_nonces": 0,
        "expired_acme_orders": 0,
        "expired_eab_keys": 0,
    }
    assert event_ids(world) == before - {seeded["old_delivered"]}
    assert seeded["kept"] <= event_ids(world)
    with world.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(LoginFailure)) == 1
        assert set(conn.scalars(select(IdempotencyKey.key))) == {"fresh-key"}
    # Nothing more to do: a second run deletes nothing.
    assert set(retention.prune(make_sessionmaker(world.engine), settings).values()) == {0}


def test_rate_counters_no_window_counts_any_more_are_pruned(world: World) -> None:
    from account_api.accounts import signup_rate
    from core import rates

    assert rates.MINUTE <= LONGEST_WINDOW and signup_rate.HOUR <= LONGEST_WINDOW
    customer = world.customer()  # a real sign-up and a real issuance each count a hit
    world.issue(customer, common_name="counted.example.com")
    with world.engine.begin() as conn:
        counted = set(conn.execute(select(RateCounter.scope, RateCounter.key)).tuples())
        assert {scope for scope, _ in counted} == {"signup", "issue"}
        for key, age in (("stale", LONGEST_WINDOW + timedelta(minutes=1)), ("recent", DAY / 48)):
            conn.execute(
                insert(RateCounter).values(
                    scope="signup", key=key, window_start=utcnow() - age, count=3
                )
            )

    deleted = retention.prune(make_sessionmaker(world.engine), world.worker_settings(None))

    assert deleted["stale_rate_counters"] == 1
    with world.engine.connect() as conn:
        left = set(conn.execute(select(RateCounter.scope, RateCounter.key)).tuples())
    assert left == counted | {("signup", "recent")}


def test_used_acme_nonces_are_pruned_once_their_age_refuses_them(world: World) -> None:
    nonces = Nonces(b"k" * 32)
    with world.engine.begin() as conn:
        for made_ago in (NONCE_TTL + timedelta(minutes=1), timedelta(minutes=5)):
            nonce = nonces.make(now=(utcnow() - made_ago).timestamp())
            conn.execute(insert(AcmeNonce).values(nonce=nonce, expires_at=nonces.expiry(nonce, 0)))
    deleted = retention.prune(make_sessionmaker(world.engine), world.worker_settings(None))
    assert deleted["used_acme_nonces"] == 1
    with world.engine.connect() as conn:
        (left,) = conn.scalars(select(AcmeNonce.expires_at)).all()
    assert left > utcnow()  # the one still young enough to be refused as used is kept


def test_acme_orders_a_month_past_expiry_and_unusable_eab_keys_are_pruned(world: World) -> None:
    customer_id = uuid.UUID(world.customer().id)
    now = utcnow()
    acme_account = uuid.uuid4()
    orders = {"old": uuid.uuid4(), "recent": uuid.uuid4()}
    with world.engine.begin() as conn:
        conn.execute(
            insert(AcmeAccount).values(
                id=acme_account, account_id=customer_id, thumbprint=uuid.uuid4().hex,
                jwk={}, status="valid", contact=[], eab_key_id="k", created_at=now,
                updated_at=now,
            )
        )  # fmt: skip
        for name, expired in (("old", 31 * DAY), ("recent", 29 * DAY)):
            conn.execute(
                insert(AcmeOrder).values(
                    id=orders[name], acme_account_id=acme_account, status="invalid",
                    identifiers=[], expires_at=now - expired, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            conn.execute(
                insert(AcmeAuthorization).values(
                    id=uuid.uuid4(), order_id=orders[name], identifier_type="dns",
                    value="a.example.com", wildcard=False, status="invalid",
                    expires_at=now, created_at=now,
                )
            )  # fmt: skip
        for key_id, expires, used in (
            ("unused", -DAY, None),
            ("used", -DAY, now),
            ("live", DAY, None),
        ):
            conn.execute(
                insert(AcmeEabKey).values(
                    key_id=key_id, account_id=customer_id, sealed_with="mk", nonce=b"n",
                    ciphertext=b"c", created_at=now, expires_at=now + expires, used_at=used,
                )
            )  # fmt: skip

    deleted = retention.prune(make_sessionmaker(world.engine), world.worker_settings(None))

    assert (deleted["expired_acme_orders"], deleted["expired_eab_keys"]) == (1, 1)
    with world.engine.connect() as conn:
        assert set(conn.scalars(select(AcmeOrder.id))) == {orders["recent"]}
        # The old order's authorization went with it (ON DELETE CASCADE).
        assert set(conn.scalars(select(AcmeAuthorization.order_id))) == {orders["recent"]}
        assert set(conn.scalars(select(AcmeEabKey.key_id))) == {"used", "live"}


def test_a_zero_period_keeps_that_kind_forever(world: World) -> None:
    add_event(world, "delivered", 4000 * DAY, delivered=True)
    add_login_failure(world, 4000 * DAY)
    settings = world.worker_settings(
        None, retain_delivered_events_days=0, retain_login_failures_days=0
    )
    deleted = retention.prune(make_sessionmaker(world.engine), settings)
    assert deleted["delivered_events"] == 0 and deleted["login_failures"] == 0


def test_prune_deletes_in_bounded_batches_each_its_own_transaction(world: World) -> None:
    for _ in range(25):
        add_event(world, "delivered", 40 * DAY, delivered=True)
    statements: list[str] = []
    left_after_commit: list[int] = []
    sessions = make_sessionmaker(world.engine)

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "DELETE FROM events" in statement:
            statements.append(statement)

    def on_commit(_session: Any) -> None:  # seen from another connection: committed
        with world.engine.connect() as conn:
            left_after_commit.append(int(conn.scalar(select(func.count(Event.seq))) or 0))

    event.listen(world.engine, "after_cursor_execute", on_execute)
    event.listen(sessions, "after_commit", on_commit)
    try:
        settings = world.worker_settings(None, prune_batch_size=10)
        deleted = retention.prune(sessions, settings)
    finally:
        event.remove(world.engine, "after_cursor_execute", on_execute)
        event.remove(sessions, "after_commit", on_commit)
    assert deleted["delivered_events"] == 25
    assert len(statements) == 3  # 10, 10, then 5 (fewer than a batch: done)
    assert left_after_commit[:3] == [15, 5, 0]


def test_the_worker_prunes_on_its_schedule(world: World, run_worker: Any) -> None:
    kept = add_event(world, "failed", 400 * DAY, delivered=False)
    run_worker(None, prune_interval_seconds=0.1)
    # Written after the worker started: gone only if pruning runs again, not once at start.
    old = add_event(world, "delivered", 40 * DAY, delivered=True)
    deadline = time.monotonic() + 30
    while old in event_ids(world) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert event_ids(world) == {kept}


def test_ca_admin_prune_deletes_expired_rows(world: World) -> None:
    add_event(world, "delivered", 40 * DAY, delivered=True)
    kept = add_event(world, "failed", 40 * DAY, delivered=False)
    result = CliRunner().invoke(
        main,
        ["prune"],
        env={"DATABASE_URL": world.database_url, "VAR_DIR": str(world.var_dir)},
    )
    assert result.exit_code == 0, result.output
    assert "delivered_events: 1 deleted" in result.output
    assert event_ids(world) == {kept}


def test_a_failing_job_neither_stops_the_others_nor_itself() -> None:
    runs: list[str] = []

    def broken(_stopping: threading.Event) -> None:
        runs.append("broken")
        raise RuntimeError("boom")

    schedule = Schedule(
        [Job("broken", 0.0, broken), Job("fine", 0.0, lambda _s: runs.append("fine"))]
    )
    for job in schedule.jobs:
        job.due = 0.0
    schedule.run_due()
    schedule.jobs[0].due = 0.0  # its retry pause over
    schedule.run_due()
    assert runs == ["broken", "fine", "broken", "fine"]
