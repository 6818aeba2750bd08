"""One customer's backlog does not hold up another's validation: the worker takes validations
fairly across customers (worker/validation_queue.py), here with the real runner thread."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert

from core import validation
from schema.base import utcnow
from schema.db import make_sessionmaker
from schema.domains import DomainAuthorization
from tests.conftest import Customer
from tests.domains.conftest import Domains
from tests.domains.servers import wait_for
from worker.validation_runner import ValidationRunner

BACKLOG = 500
TIME_LIMIT = 10  # the contract's: a check gives up after 10 s
DEADLINE = 12  # the contract's bound: another customer waits at most one check's time limit


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that takes connections (the kernel's backlog) and never
    answers: every http-01 check aimed at it runs to the time limit."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    yield int(listener.getsockname()[1])
    listener.close()


def queue_backlog(engine: Any, customer: Customer, count: int) -> None:
    """`count` http-01 validations of the customer, asked for an hour ago (older than anything
    asked for in the test), inserted in one statement."""
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "account_id": uuid.UUID(customer.id),
            "name": f"backlog-{i}-{uuid.uuid4().hex[:8]}.test",
            "include_subdomains": False,
            "status": "pending",
            "token": validation.new_token(),
            "expires_at": now + timedelta(days=7),
            "created_at": now - timedelta(hours=1),
            "validation_type": "http-01",
            "validation_requested_at": now - timedelta(hours=1) + timedelta(milliseconds=i),
            "validation_attempts": 0,
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(DomainAuthorization), rows)


def test_a_backlog_of_hanging_checks_does_not_delay_another_customer(
    make_customer: Callable[..., Customer],
    domains: Domains,
    settings: Any,
    engine: Any,
    silent_port: int,
) -> None:
    hoarder, other = make_customer(), make_customer()
    queue_backlog(engine, hoarder, BACKLOG)
    slow = settings.model_copy(
        update={"validation_http_port": silent_port, "validation_timeout_seconds": TIME_LIMIT}
    )
    runner = ValidationRunner(slow, make_sessionmaker(engine))
    hoarder_id = uuid.UUID(hoarder.id)
    try:
        runner.start()

        def hoarder_in_flight() -> bool:
            with engine.connect() as conn:
                leased = conn.execute(
                    DomainAuthorization.__table__.select().where(
                        DomainAuthorization.account_id == hoarder_id,
                        DomainAuthorization.validation_leased_until.is_not(None),
                    )
                ).first()
            return leased is not None

        wait_for(hoarder_in_flight, 30)  # the backlog's checks are hanging now
        authz = domains.create(other, f"fair-{uuid.uuid4().hex[:8]}.test")
        domains.publish(authz, "dns-01")  # dns-01: the silent port is the http-01 one
        asked = domains.client.post(
            f"/api/domains/{authz['id']}/validate", json={"type": "dns-01"}, headers=other.auth
        )
        assert asked.status_code == 202, asked.text
        done = wait_for(
            lambda: (d := domains.get(other, authz["id"]))["status"] != "pending" and d,
            DEADLINE,
        )
        assert done["status"] == "valid", done
    finally:
        runner.stop()
        with engine.begin() as conn:  # no other test may inherit the backlog
            conn.execute(
                delete(DomainAuthorization).where(DomainAuthorization.account_id == hoarder_id)
            )
