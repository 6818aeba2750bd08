"""Logs are JSON lines with request ids, and no secret ever reaches them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from schema.db import make_engine
from tests.conftest import LiveServices, unique_email


def test_a_full_account_flow_logs_no_secret(live: LiveServices, engine: Any) -> None:
    email, password = unique_email("logs"), "Distinctive-Password-7731"
    base = live.account_url
    assert (
        httpx.post(
            f"{base}/api/accounts",
            json={"email": email, "password": password, "name": "Log Reader"},
        ).status_code
        == 201
    )
    httpx.post(f"{base}/api/auth/token", json={"email": email, "password": "wrong-" + password})
    token = httpx.post(
        f"{base}/api/auth/token", data={"username": email, "password": password}
    ).json()["access_token"]
    me = httpx.get(
        f"{base}/api/accounts/me",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-me-123"},
    )
    assert me.status_code == 200 and me.headers["X-Request-ID"] == "trace-me-123"
    with engine.connect() as conn:
        stored_hash = conn.execute(
            text("SELECT password_hash FROM accounts WHERE email = :e"), {"e": email}
        ).scalar_one()

    log_text = live.log_path.read_text()
    lines = [line for line in log_text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "no JSON log lines"
    assert any(
        r.get("request_id") == "trace-me-123" and r.get("path") == "/api/accounts/me"
        for r in records
    )
    for secret in (password, token, stored_hash, token.split(".")[2], "PRIVATE KEY"):
        assert secret not in log_text


def test_control_characters_are_422_and_no_statement_parameters_reach_the_log(
    live: LiveServices,
) -> None:
    base = live.account_url
    email, password = unique_email("nul"), "Nul-Byte-Password-5521"
    attempts = [
        ("/api/accounts", {"email": email, "password": password, "name": "Da\u0000ve"}),
        ("/api/accounts", {"email": email, "password": password, "name": "Da\u001bve"}),
        (
            "/api/accounts",
            {"email": email.replace("@", "\u0000@"), "password": password, "name": "D"},
        ),
        ("/api/auth/token", {"email": email.replace("@", "\u0000@"), "password": password}),
    ]
    for path, body in attempts:
        response = httpx.post(f"{base}{path}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert password not in response.text
    form = httpx.post(f"{base}/api/auth/token", data={"username": "a\u0000b", "password": "x"})
    assert form.status_code == 422, form.text
    log_text = live.log_path.read_text()
    assert "[parameters:" not in log_text
    assert "$argon2" not in log_text
    assert password not in log_text


def test_a_failed_statement_does_not_carry_its_parameters(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as failure:
            # A statement that fails on every backend (SQLite answers 1/0 with NULL).
            conn.execute(
                text("SELECT CAST(:secret AS text) FROM no_such_table"),
                {"secret": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"},
            )
    finally:
        engine.dispose()
    assert "argon2id" not in str(failure.value)
    assert engine.hide_parameters


def test_the_account_service_engine_hides_parameters(account_app: Any) -> None:
    from account_api.extensions import db

    with account_app.app_context():
        assert db.engine.hide_parameters


def test_both_services_log_the_client_a_trusted_proxy_names_and_no_one_elses(
    live: LiveServices,
) -> None:
    from tests.conftest import TEST_PROXY

    sent: dict[str, tuple[str, str]] = {}
    for base in (live.account_url, live.certificate_url):
        for peer in ("127.0.0.1", TEST_PROXY):
            request_id = f"client-{uuid.uuid4().hex[:12]}"
            transport = httpx.HTTPTransport(local_address=peer)
            with httpx.Client(transport=transport) as client:
                answer = client.get(
                    f"{base}/healthz",
                    headers={"X-Forwarded-For": "198.51.100.77", "X-Request-ID": request_id},
                )
            assert answer.status_code == 200
            sent[request_id] = (base, "198.51.100.77" if peer == TEST_PROXY else peer)
    records = [
        json.loads(line) for line in live.log_path.read_text().splitlines() if line.startswith("{")
    ]
    logged = {r["request_id"]: r.get("client") for r in records if r.get("request_id") in sent}
    assert logged == {request_id: client for request_id, (_, client) in sent.items()}
