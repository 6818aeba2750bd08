"""Tokens: both grant forms, identical failures, throttling, and every forged token refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text

from account_api import create_app
from schema.base import utcnow
from schema.keyfiles import TOKEN_PRIVATE_KEY_FILE, TOKEN_PUBLIC_KEY_FILE
from tests.conftest import Customer, account_settings, unique_email


def test_form_grant_gives_a_bearer_token(accounts: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    response = accounts.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": customer.email, "password": customer.password},
    )
    assert response.status_code == 200
    body = response.json
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert response.headers["Cache-Control"] == "no-store"
    me = accounts.get(
        "/api/accounts/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200 and me.json["id"] == customer.id


def test_token_is_eddsa_and_names_the_account(make_customer: Any) -> None:
    customer: Customer = make_customer()
    header = jwt.get_unverified_header(customer.token)
    claims = jwt.decode(customer.token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert claims["sub"] == customer.id and claims["exp"] > claims["iat"]


def test_email_login_is_case_insensitive(accounts: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    response = accounts.post(
        "/api/auth/token", json={"email": customer.email.upper(), "password": customer.password}
    )
    assert response.status_code == 200


def _failure_shape(response: Any) -> tuple[int, str, str | None]:
    return (
        response.status_code,
        response.get_data(as_text=True),
        response.headers.get("WWW-Authenticate"),
    )


def test_wrong_password_and_unknown_email_give_identical_401s(
    accounts: Any, make_customer: Any
) -> None:
    customer: Customer = make_customer()
    wrong_password = accounts.post(
        "/api/auth/token", json={"email": customer.email, "password": "not the one"}
    )
    unknown_email = accounts.post(
        "/api/auth/token", json={"email": unique_email(), "password": "not the one"}
    )
    assert wrong_password.status_code == 401
    assert _failure_shape(wrong_password) == _failure_shape(unknown_email)


def test_token_request_validation(accounts: Any) -> None:
    assert accounts.post("/api/auth/token", json={"email": "a@b.c"}).status_code == 422
    assert accounts.post("/api/auth/token", data={"password": "x"}).status_code == 422
    response = accounts.post("/api/auth/token", data="x", content_type="text/plain")
    assert response.status_code == 415
    bad = accounts.post("/api/auth/token", data="{nope", content_type="application/json")
    assert bad.status_code == 400


def test_five_failures_throttle_then_the_window_passes(
    accounts: Any, make_customer: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    wrong = {"email": customer.email, "password": "wrong password"}
    for _ in range(5):
        assert accounts.post("/api/auth/token", json=wrong).status_code == 401
    throttled = accounts.post("/api/auth/token", json=wrong)
    assert throttled.status_code == 429
    assert throttled.mimetype == "application/problem+json"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 900
    # Even the right password waits: otherwise the throttle would be an oracle.
    right = {"email": customer.email, "password": customer.password}
    assert accounts.post("/api/auth/token", json=right).status_code == 429
    # Move the failures out of the 15-minute window instead of sleeping through it.
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE login_failures SET failed_at = :t WHERE email_key = :e"),
            {"t": utcnow() - timedelta(minutes=16), "e": customer.email.lower()},
        )
    assert accounts.post("/api/auth/token", json=right).status_code == 200


def test_throttle_holds_across_app_instances(
    database_url: str, var_dir: Path, make_customer: Any
) -> None:
    customer: Customer = make_customer()
    wrong = {"email": customer.email, "password": "wrong password"}
    first = create_app(account_settings(database_url, var_dir)).test_client()
    second = create_app(account_settings(database_url, var_dir)).test_client()
    for client in (first, second, first, second, first):
        assert client.post("/api/auth/token", json=wrong).status_code == 401
    assert second.post("/api/auth/token", json=wrong).status_code == 429


def test_login_rehashes_when_argon2_parameters_change(
    database_url: str, var_dir: Path, make_customer: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    stronger = create_app(account_settings(database_url, var_dir, argon2_memory_cost=2048))
    response = stronger.test_client().post(
        "/api/auth/token", json={"email": customer.email, "password": customer.password}
    )
    assert response.status_code == 200
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM accounts WHERE email = :e"), {"e": customer.email}
        ).scalar_one()
    assert stored.startswith("$argon2id$") and "m=2048," in stored


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(customer: Customer) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(customer.token, options={"verify_signature": False})
    return claims


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """The algorithm-confusion forgery: HMAC keyed with the public key PyJWT won't sign with."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def forged_tokens(customer: Customer, var_dir: Path) -> dict[str, str]:
    private = serialization.load_pem_private_key(
        (var_dir / TOKEN_PRIVATE_KEY_FILE).read_bytes(), password=None
    )
    public_pem = (var_dir / TOKEN_PUBLIC_KEY_FILE).read_bytes()
    claims = _claims(customer)
    header, payload, signature = customer.token.split(".")
    tampered_claims = {**claims, "sub": str(uuid.uuid4())}
    now = utcnow()
    expired = {
        **claims,
        "iat": now - timedelta(hours=2),
        "nbf": now - timedelta(hours=2),
        "exp": now - timedelta(hours=1),
    }
    return {
        "expired": jwt.encode(expired, private, algorithm="EdDSA"),  # type: ignore[arg-type]
        "tampered": f"{header}.{_b64(tampered_claims)}.{signature}",
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong_key": jwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        "hs256_with_public_key": _hs256(claims, public_pem),
        "wrong_audience": jwt.encode(
            {**claims, "aud": "someone-else"},
            private,  # type: ignore[arg-type]
            algorithm="EdDSA",
        ),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "tampered",
        "alg_none",
        "wrong_key",
        "hs256_with_public_key",
        "wrong_audience",
        "garbage",
    ],
)
def test_forged_tokens_are_401(accounts: Any, make_customer: Any, var_dir: Path, kind: str) -> None:
    customer: Customer = make_customer()
    token = forged_tokens(customer, var_dir)[kind]
    response = accounts.get("/api/accounts/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_or_non_bearer_authorization_is_401(accounts: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    assert accounts.get("/api/accounts/me").status_code == 401
    basic = {"Authorization": f"Basic {customer.token}"}
    assert accounts.get("/api/accounts/me", headers=basic).status_code == 401
