"""A keep-alive client's next request always gets its own answer, after any error answer;
after a 5xx the server says `Connection: close` and ends the connection cleanly."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from schema.db import normalize_url
from tests.conftest import LiveServices, certificate_settings, free_port, unique_email

TRIES = 20
LIMIT = 64 * 1024


def _body(size: int) -> bytes:
    """A JSON document of exactly `size` bytes."""
    return b'{"pad": "' + b"x" * (size - 11) + b'"}'


@pytest.mark.parametrize("service", ["account", "certificate"])
@pytest.mark.parametrize(
    ("path", "size", "status"),
    [
        ("/api/accounts", 100_000, 413),  # refused unread: over the limit
        ("/api/nowhere", LIMIT, 404),  # within the limit, on no route
        ("/healthz", LIMIT, 405),  # within the limit, wrong method
    ],
)
def test_an_error_answer_leaves_the_connection_usable_or_closed_cleanly(
    live: LiveServices, service: str, path: str, size: int, status: int
) -> None:
    base = live.account_url if service == "account" else live.certificate_url
    if service == "certificate" and path == "/api/accounts":
        path = "/api/certificates"
    lost: list[str] = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for attempt in range(TRIES):
            refused = client.post(
                path, content=_body(size), headers={"Content-Type": "application/json"}
            )
            assert refused.status_code == status, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            try:
                follow = client.get("/healthz")
            except httpx.RemoteProtocolError as exc:
                lost.append(f"try {attempt}: {exc}")
                continue
            assert follow.status_code == 200, follow.text
    assert lost == []


def test_a_chunked_body_over_the_limit_leaves_the_connection_usable_or_closed_cleanly(
    live: LiveServices,
) -> None:
    def chunks() -> object:
        for _ in range(10):
            yield b"x" * 10_000

    with httpx.Client(base_url=live.account_url, timeout=10) as client:
        for _ in range(TRIES):
            refused = client.post(
                "/api/accounts", content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert refused.status_code == 413, refused.text
            assert client.get("/healthz").status_code == 200


def _exchange(base: str, request: bytes) -> tuple[bytes, bytes, bool]:
    """Send one raw HTTP/1.1 request on a fresh connection and read until the server ends
    it (or 10 s pass): the head, the body (as long as Content-Length says), and whether
    the server ended the connection cleanly (EOF, not a reset, not left open)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received, ended = b"", False
        try:
            while chunk := sock.recv(65536):
                received += chunk
            ended = True
        except (TimeoutError, ConnectionResetError):
            pass
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body, ended


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _closes_cleanly_after(base: str, request: bytes) -> dict[str, object]:
    """A 5xx answer, whole, with `Connection: close`, then the connection ended cleanly;
    and a keep-alive client's next request gets its own answer. The problem document."""
    head, body, ended = _exchange(base, request)
    status = int(head.split(b" ")[1])
    assert status >= 500, head
    assert _header(head, b"connection") == b"close", head
    assert int(_header(head, b"content-length") or -1) == len(body), (head, body)
    assert ended, "the server neither ended the connection nor kept its word"
    document: dict[str, object] = json.loads(body)
    assert document["status"] == status
    return document


@contextlib.contextmanager
def _table_renamed(database_url: str, table: str) -> Iterator[None]:
    """The service's table gone for a while (a fault no request can cause): queries on it
    fail, a 5xx; put back on the way out."""
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        try:
            yield
        finally:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
    finally:
        engine.dispose()


def test_a_5xx_of_the_certificate_service_closes_the_connection_cleanly(
    live: LiveServices, database_url: str
) -> None:
    port = live.certificate_url.rsplit(":", 1)[1]
    request = f"GET /acme/renewal-info/AQ.AQ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with _table_renamed(database_url, "certificates"):
        document = _closes_cleanly_after(live.certificate_url, request)
        assert str(document["type"]).startswith("urn:ietf:params:acme:error:serverInternal")
        with httpx.Client(base_url=live.certificate_url, timeout=10) as client:
            for _ in range(5):
                failed = client.get("/acme/renewal-info/AQ.AQ")
                assert failed.status_code >= 500, failed.text
                assert failed.headers["connection"] == "close"
                assert client.get("/healthz").status_code == 200
    assert httpx.get(f"{live.certificate_url}/acme/renewal-info/AQ.AQ").status_code == 404


def test_a_5xx_of_the_account_service_closes_the_connection_cleanly(
    live: LiveServices, database_url: str
) -> None:
    port = live.account_url.rsplit(":", 1)[1]

    def signup() -> bytes:
        account = {"email": unique_email("keepalive"), "password": "s3cret-passw0rd", "name": "K"}
        return json.dumps(account).encode()

    body = signup()
    request = (
        f"POST /api/accounts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with _table_renamed(database_url, "accounts"):
        _closes_cleanly_after(live.account_url, request)
        with httpx.Client(base_url=live.account_url, timeout=10) as client:
            for _ in range(5):
                failed = client.post(
                    "/api/accounts",
                    content=signup(),
                    headers={"Content-Type": "application/json"},
                )
                assert failed.status_code >= 500, failed.text
                assert failed.headers["connection"] == "close"
                assert client.get("/healthz").status_code == 200


@pytest.fixture
def failing_route_service(database_url: str, var_dir: Path) -> Iterator[str]:
    """The certificate service, served by a real Uvicorn, with two routes added that fail
    with an exception no handler knows (one under /acme/): its base URL."""
    from certificate_api.main import create_app
    from tests.acme_protocol.conftest import InProcessServer

    app = create_app(certificate_settings(database_url, var_dir))

    async def fail() -> None:
        raise RuntimeError("a fault of the service itself")

    app.add_api_route("/api/failing", fail)
    app.add_api_route("/acme/failing", fail)
    port = free_port()
    server = InProcessServer(app, port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/api/failing", "/acme/failing"])
def test_an_unexpected_exception_is_a_500_that_closes_the_connection_cleanly(
    failing_route_service: str, path: str
) -> None:
    base = failing_route_service
    port = base.rsplit(":", 1)[1]
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    document = _closes_cleanly_after(base, request)
    assert document["status"] == 500
    assert "request id" in str(document["detail"])
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(TRIES):
            failed = client.get(path)
            assert failed.status_code == 500, failed.text
            assert failed.headers["connection"] == "close"
            assert failed.headers["x-request-id"]
            if path.startswith("/acme/"):
                assert failed.headers["replay-nonce"]
                assert failed.json()["type"] == "urn:ietf:params:acme:error:serverInternal"
            assert client.get("/healthz").status_code == 200
