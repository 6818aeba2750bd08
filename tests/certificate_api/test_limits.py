"""Limits on expensive work: issuance per account per minute (counted in the database, so
across processes), and slow key generation at once per process."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from certificate_api.main import create_app
from tests.certificate_api.conftest import assert_problem
from tests.conftest import certificate_settings


@pytest.fixture
def app_with(database_url: str, var_dir: Path) -> Iterator[Any]:
    """Build certificate service apps (each like a worker process) with these settings."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(certificate_settings(database_url, var_dir, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _issue(client: TestClient, auth: dict[str, str], **body: Any) -> Any:
    return client.post(
        "/api/certificates", json={"common_name": "rate.example.com", **body}, headers=auth
    )


def test_issuance_past_the_per_minute_rate_is_429_across_processes(
    app_with: Any, make_customer: Any
) -> None:
    first, second = app_with(issuance_rate_per_minute=2), app_with(issuance_rate_per_minute=2)
    if datetime.now(UTC).second > 45:  # start in a fresh minute: the window is per minute
        time.sleep(61 - datetime.now(UTC).second)
    customer, other = make_customer(), make_customer()
    assert _issue(first, customer.auth).status_code == 201
    assert _issue(second, customer.auth).status_code == 201
    refused = _issue(first, customer.auth)  # the third this minute, whichever process
    body = assert_problem(refused, 429)
    assert "2 certificates a minute" in body["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert _issue(second, customer.auth).status_code == 429
    assert _issue(second, other.auth).status_code == 201  # another account is not affected


def test_slow_key_generations_past_the_bound_are_503_and_the_loop_keeps_serving(
    app_with: Any, make_customer: Any
) -> None:
    client = app_with(max_slow_key_generations=1, key_pool_sizes={})
    customer = make_customer()
    with ThreadPoolExecutor(6) as pool:
        pending = [
            pool.submit(_issue, client, customer.auth, key_type="rsa-4096") for _ in "123456"
        ]
        health = client.get("/healthz")  # answered while keys are being made
        answers = [future.result() for future in pending]
    assert health.status_code == 200
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) <= {201, 503} and statuses[201] >= 1 and statuses[503] >= 1, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert_problem(answer, 503)
            assert answer.headers["Retry-After"] == "2"
