"""A keep-alive client's next request always gets its own answer, after any error answer."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServices

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
