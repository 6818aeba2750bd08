"""Rejected secrets are never echoed back; rejected names are, so the client knows which."""

from __future__ import annotations

from typing import Any

MARKER = "Zq7SecretMarker"


def test_a_rejected_password_is_never_echoed(accounts: Any, make_customer: Any) -> None:
    too_long = MARKER * 20  # over 256 characters
    bodies = [
        ("/api/accounts", {"email": "echo@example.com", "password": too_long, "name": "E"}),
        ("/api/accounts", {"email": "echo@example.com", "password": MARKER[:6], "name": "E"}),
        ("/api/auth/token", {"email": "echo@example.com", "password": too_long}),
        ("/api/auth/token", {"email": "echo@example.com", "password": 7, "extra": MARKER}),
    ]
    for path, body in bodies:
        response = accounts.post(path, json=body)
        assert response.status_code == 422, response.get_data(as_text=True)
        assert MARKER not in response.get_data(as_text=True)
        assert MARKER[:6] not in response.get_data(as_text=True)
    customer = make_customer()
    change = accounts.post(
        "/api/accounts/me/password",
        json={"current_password": customer.password, "new_password": too_long},
        headers=customer.auth,
    )
    assert change.status_code == 422 and MARKER not in change.get_data(as_text=True)


def test_a_rejected_csr_or_key_is_never_echoed(certs: Any, make_customer: Any) -> None:
    customer = make_customer()
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        f"{MARKER}{MARKER}\n"
        "-----END CERTIFICATE REQUEST-----\n"
    )
    for body in (
        {"common_name": "echo.example.com", "csr": pem},
        {"common_name": "echo.example.com", "csr": MARKER},
        {"common_name": "echo.example.com", "csr": [MARKER]},
        {"common_name": "echo.example.com", "private_key_pem": MARKER},
    ):
        response = certs.post("/api/certificates", json=body, headers=customer.auth)
        assert response.status_code == 422, response.text
        assert MARKER not in response.text


def test_a_rejected_name_is_named(certs: Any, make_customer: Any) -> None:
    customer = make_customer()
    response = certs.post(
        "/api/certificates",
        json={"common_name": "ok.example.com", "dns_names": ["exa mple.com"]},
        headers=customer.auth,
    )
    assert response.status_code == 422
    assert "exa mple.com" in response.text
