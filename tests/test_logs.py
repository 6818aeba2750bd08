"""Logs are JSON lines with request ids, and no secret ever reaches them."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

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
