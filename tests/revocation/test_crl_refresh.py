"""Coalesced CRL rebuilds: a served CRL may be up to CRL_REFRESH_SECONDS old; OCSP is always
current."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient

from certificate_api.main import create_app
from tests.conftest import Customer, certificate_settings


@pytest.fixture
def app_with_refresh(database_url: str, var_dir: Path) -> Iterator[Any]:
    """Build a certificate service app whose CRL may be `seconds` old."""
    clients: list[TestClient] = []

    def make(seconds: float) -> TestClient:
        settings = certificate_settings(database_url, var_dir, crl_refresh_seconds=seconds)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _issue_and_hold(client: TestClient, customer: Customer) -> dict[str, Any]:
    issued = client.post(
        "/api/certificates", json={"common_name": "hold.example.com"}, headers=customer.auth
    )
    assert issued.status_code == 201, issued.text
    body: dict[str, Any] = issued.json()
    crl_before = client.get("/api/ca/crl")  # the CRL in force before the hold
    assert crl_before.status_code == 200
    held = client.patch(
        f"/api/certificates/{body['id']}", json={"is_active": False}, headers=customer.auth
    )
    assert held.status_code == 200, held.text
    return body


def _on_crl(client: TestClient, serial_hex: str) -> bool:
    crl = x509.load_der_x509_crl(client.get("/api/ca/crl").content)
    return crl.get_revoked_certificate_by_serial_number(int(serial_hex, 16)) is not None


def _ocsp_status(client: TestClient, cert: dict[str, Any]) -> ocsp.OCSPCertStatus:
    leaf = x509.load_pem_x509_certificate(cert["certificate_pem"].encode())
    issuer = x509.load_pem_x509_certificate(cert["chain_pem"].encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    answer = client.post(
        "/api/ocsp",
        content=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    return ocsp.load_der_ocsp_response(answer.content).certificate_status


def test_a_hold_waits_for_the_refresh_on_the_crl_but_not_in_ocsp(
    app_with_refresh: Any, make_customer: Any
) -> None:
    client = app_with_refresh(3600)
    cert = _issue_and_hold(client, make_customer())
    # Coalesced: the CRL served right after the change is the one built before it.
    assert not _on_crl(client, cert["serial_number"])
    assert _ocsp_status(client, cert) is ocsp.OCSPCertStatus.REVOKED


def test_with_refresh_zero_the_next_crl_has_the_hold(app_with_refresh: Any, make_customer: Any):
    client = app_with_refresh(0)
    cert = _issue_and_hold(client, make_customer())
    assert _on_crl(client, cert["serial_number"])


def test_a_hold_reaches_the_crl_once_the_refresh_has_passed(
    app_with_refresh: Any, make_customer: Any
) -> None:
    client = app_with_refresh(1)
    cert = _issue_and_hold(client, make_customer())
    deadline = time.monotonic() + 60  # a bound for a stuck loop, not a measurement
    while not _on_crl(client, cert["serial_number"]):
        assert time.monotonic() < deadline, "the hold never reached the CRL"
        time.sleep(0.2)


def test_a_big_crl_is_built_in_a_helper_process(
    app_with_refresh: Any, make_customer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every CRL counts as big here, so the helper process builds and publishes it.
    monkeypatch.setattr("certificate_api.revocation.service.OFFLOAD_ENTRIES", 0)
    client = app_with_refresh(0)
    cert = _issue_and_hold(client, make_customer())
    assert _on_crl(client, cert["serial_number"])
    assert client.app.state.runtime.crl_cache.helper.executor is not None  # it did the work
