"""The name checks cost issuance no round trip to PostgreSQL: the covering authorizations
come with the account check, and their re-check rides in the insert's batch."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certificate_api import database
from tests.conftest import Customer, postgres_only


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each message the async database layer sends to PostgreSQL, by kind."""
    sent: list[str] = []
    run_prepared = database._run_prepared
    send = database._PostgresTransaction.send

    async def counted_run(*args: Any, **kwargs: Any) -> Any:
        sent.append("statement")
        return await run_prepared(*args, **kwargs)

    async def counted_send(self: Any, then: str | None = None) -> None:
        if self.queued or then is not None:
            sent.append("batch" if then is None else f"batch+{then}")
        await send(self, then)

    monkeypatch.setattr(database, "_run_prepared", counted_run)
    monkeypatch.setattr(database._PostgresTransaction, "send", counted_send)
    return sent


@postgres_only
def test_name_checks_add_no_round_trip_to_issuance(
    make_customer: Callable[..., Customer],
    names_app: TestClient,
    certs: TestClient,
    grant: Callable[..., Any],
    round_trips: list[str],
) -> None:
    customer = make_customer()
    name = f"rt-{uuid.uuid4().hex[:8]}.test"
    grant(customer, name, include_subdomains=True)
    body = {"common_name": name, "dns_names": [f"www.{name}", f"*.{name}"]}

    round_trips.clear()
    checked = names_app.post("/api/certificates", json=body, headers=customer.auth)
    assert checked.status_code == 201, checked.text
    with_checks = list(round_trips)

    round_trips.clear()
    opened = certs.post("/api/certificates", json=body, headers=customer.auth)  # open
    assert opened.status_code == 201, opened.text
    without = list(round_trips)

    assert with_checks == without == ["statement", "batch", "batch+COMMIT"]
