"""A database that does not answer: 503 with Retry-After, never a 500 or a hang."""

from __future__ import annotations

import socket
from pathlib import Path

from account_api import create_app
from tests.conftest import account_settings


def dead_postgres_url() -> str:
    """A PostgreSQL URL on a local port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nothing"


def test_requests_during_a_database_outage_get_503(tmp_path: Path) -> None:
    app = create_app(account_settings(dead_postgres_url(), tmp_path, db_pool_timeout=1.0))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # the process is up
    ready = client.get("/readyz")
    assert ready.status_code == 503
    signup = client.post(
        "/api/accounts",
        json={"email": "outage@example.com", "password": "long enough", "name": "Outage"},
    )
    assert signup.status_code == 503
    assert signup.headers["Retry-After"] == "5"
    assert signup.content_type == "application/problem+json"
    assert signup.json["detail"] == "the database is unavailable"
    login = client.post("/api/auth/token", json={"email": "o@example.com", "password": "x" * 8})
    assert login.status_code == 503
