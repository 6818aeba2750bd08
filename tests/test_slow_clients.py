"""Slow clients: connections that send headers and then trickle (or stall) their bodies must
not keep anyone else from being answered, on either service."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Customer, LiveServices

ACCOUNT_SLOW = 60
CERTIFICATE_SLOW = 600
# Generous: this checks that an answer comes at all, not how fast.
PATIENT = httpx.Timeout(60.0)


def _raise_fd_limit(needed: int) -> None:
    """Each held connection costs this process one descriptor (and the server one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"`ulimit -n` is {hard}; this test needs {needed} descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def slow_bodies(url: str, path: str, content_type: str, count: int) -> Iterator[None]:
    """`count` connections, each having sent a POST's headers announcing 1000 bytes and then
    one byte of the body, held open (never finished) until the block ends."""
    parts = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n0"
    ).encode()
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
            sock.sendall(head)
            held.append(sock)
        yield
    finally:
        for sock in held:
            sock.close()


def test_slow_bodies_do_not_starve_either_service(
    live: LiveServices, make_customer: Any, issue: Any
) -> None:
    _raise_fd_limit(4 * (ACCOUNT_SLOW + CERTIFICATE_SLOW) + 256)
    customer: Customer = make_customer()
    certificate_id = issue(customer)["id"]
    with (
        slow_bodies(live.account_url, "/api/accounts", "application/json", ACCOUNT_SLOW),
        slow_bodies(
            live.certificate_url, "/api/ocsp", "application/ocsp-request", CERTIFICATE_SLOW
        ),
    ):
        health = httpx.get(f"{live.account_url}/healthz", timeout=PATIENT)
        assert health.status_code == 200, health.text
        fetched = httpx.get(
            f"{live.certificate_url}/api/certificates/{certificate_id}",
            headers=customer.auth,
            timeout=PATIENT,
        )
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["id"] == certificate_id
        chain = httpx.get(f"{live.certificate_url}/api/ca/certificates", timeout=PATIENT)
        assert chain.status_code == 200, chain.text
        assert chain.text.count("BEGIN CERTIFICATE") == 2


def _connect(url: str, first_bytes: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=PATIENT.read)
    sock.sendall(first_bytes)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("service", ["account", "certificate"])
def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(
    live: LiveServices, service: str
) -> None:
    url = live.account_url if service == "account" else live.certificate_url
    path = "/api/accounts" if service == "account" else "/api/certificates"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        'Content-Length: 1000\r\n\r\n{"common_name"'
    )
    with _connect(url, head.encode()) as sock:
        answer = _read_all(sock)  # the server ends it: a stalled client holds nothing for long
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408", answer
    assert b"application/problem+json" in rest.lower(), answer


@pytest.mark.parametrize("service", ["account", "certificate"])
def test_headers_that_never_finish_get_the_connection_closed(
    live: LiveServices, service: str
) -> None:
    url = live.account_url if service == "account" else live.certificate_url
    with _connect(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") as sock:
        assert _read_all(sock) == b""  # closed without an answer, not held open
