"""Signing out everywhere and changing the password retire older tokens in both services."""

from __future__ import annotations

from typing import Any

import jwt

from tests.conftest import Customer


def _login(accounts: Any, email: str, password: str) -> str:
    response = accounts.post("/api/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.json["access_token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _answers(accounts: Any, certs: Any, token: str, certificate_id: str) -> list[int]:
    """What each kind of account check answers this token: the account service's, and the
    certificate service's on a fetch (one query with the certificate), a list (the account
    alone) and a hold (with the certificate row locked)."""
    return [
        accounts.get("/api/accounts/me", headers=_bearer(token)).status_code,
        certs.get(f"/api/certificates/{certificate_id}", headers=_bearer(token)).status_code,
        certs.get("/api/certificates", headers=_bearer(token)).status_code,
        certs.patch(
            f"/api/certificates/{certificate_id}", json={"is_active": True}, headers=_bearer(token)
        ).status_code,
    ]


def test_a_token_minted_just_before_sign_out_is_refused_and_one_just_after_accepted(
    accounts: Any, certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    certificate = issue(customer)
    before = _login(accounts, customer.email, customer.password)
    signed_out = accounts.post("/api/auth/logout", headers=_bearer(before))
    assert signed_out.status_code == 204 and not signed_out.get_data()
    after = _login(accounts, customer.email, customer.password)
    # Told apart by the account's token generation, not by when they were minted: both are
    # usually stamped with the same second.
    generations = [
        jwt.decode(t, options={"verify_signature": False})["gen"] for t in (before, after)
    ]
    assert generations[1] == generations[0] + 1

    assert _answers(accounts, certs, customer.token, certificate["id"]) == [401] * 4
    assert _answers(accounts, certs, before, certificate["id"]) == [401] * 4
    assert _answers(accounts, certs, after, certificate["id"]) == [200] * 4
    # Signing out again with a retired token is refused; with a current one it works.
    assert accounts.post("/api/auth/logout", headers=_bearer(before)).status_code == 401
    assert accounts.post("/api/auth/logout").status_code == 401


def test_changing_the_password_needs_the_current_one_and_retires_every_older_token(
    accounts: Any, certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    certificate = issue(customer)
    url = "/api/accounts/me/password"
    wrong = accounts.post(
        url,
        json={"current_password": "not-the-password", "new_password": "a new passw0rd"},
        headers=customer.auth,
    )
    assert wrong.status_code == 403 and wrong.mimetype == "application/problem+json"
    assert "not-the-password" not in wrong.get_data(as_text=True)
    short = accounts.post(
        url,
        json={"current_password": customer.password, "new_password": "short"},
        headers=customer.auth,
    )
    assert short.status_code == 422
    assert "short" not in short.json["detail"] and "short" not in str(short.json["errors"])
    # Neither attempt changed anything.
    assert _answers(accounts, certs, customer.token, certificate["id"]) == [200] * 4

    changed = accounts.post(
        url,
        json={"current_password": customer.password, "new_password": "a new passw0rd"},
        headers=customer.auth,
    )
    assert changed.status_code == 204
    assert _answers(accounts, certs, customer.token, certificate["id"]) == [401] * 4
    old = accounts.post(
        "/api/auth/token", json={"email": customer.email, "password": customer.password}
    )
    assert old.status_code == 401
    fresh = _login(accounts, customer.email, "a new passw0rd")
    assert _answers(accounts, certs, fresh, certificate["id"]) == [200] * 4


def test_a_token_without_a_generation_is_of_generation_zero(
    accounts: Any, make_customer: Any, var_dir: Any
) -> None:
    from cryptography.hazmat.primitives import serialization

    from schema.keyfiles import TOKEN_PRIVATE_KEY_FILE

    customer: Customer = make_customer()
    private = serialization.load_pem_private_key(
        (var_dir / TOKEN_PRIVATE_KEY_FILE).read_bytes(), password=None
    )
    claims = jwt.decode(customer.token, options={"verify_signature": False})
    claims.pop("gen")
    legacy = jwt.encode(claims, private, algorithm="EdDSA")  # type: ignore[arg-type]
    assert accounts.get("/api/accounts/me", headers=_bearer(legacy)).status_code == 200
    assert accounts.post("/api/auth/logout", headers=customer.auth).status_code == 204
    assert accounts.get("/api/accounts/me", headers=_bearer(legacy)).status_code == 401
    claims["gen"] = "1"  # not an integer: a token we did not mint
    odd = jwt.encode(claims, private, algorithm="EdDSA")  # type: ignore[arg-type]
    assert accounts.get("/api/accounts/me", headers=_bearer(odd)).status_code == 401
