"""Who may touch which certificate: other accounts get 404, bad tokens 401, bad ids 4xx."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.account_api.test_tokens import forged_tokens
from tests.certificate_api.conftest import assert_problem
from tests.conftest import Customer

ROUTES = [
    ("GET", "/api/certificates/{id}", None),
    ("PATCH", "/api/certificates/{id}", {"is_active": False}),
    ("POST", "/api/certificates/{id}/revoke", {"reason": "keyCompromise"}),
    ("GET", "/api/certificates/{id}/private-key", None),
]
ROUTE_IDS = ["get", "patch", "revoke", "private-key"]


def call(certs: Any, route: tuple[str, str, Any], cert_id: str, headers: dict[str, str]) -> Any:
    method, path, body = route
    return certs.request(method, path.format(id=cert_id), json=body, headers=headers)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_another_accounts_certificate_is_404_like_a_missing_one(
    certs: Any, make_customer: Any, issue: Any, route: tuple[str, str, Any]
) -> None:
    owner: Customer = make_customer()
    stranger: Customer = make_customer()
    created = issue(owner)
    theirs = call(certs, route, created["id"], stranger.auth)
    missing = call(certs, route, str(uuid.uuid4()), stranger.auth)
    assert_problem(theirs, 404)
    assert_problem(missing, 404)
    assert theirs.json() == missing.json()  # nothing tells the two apart
    untouched = certs.get(f"/api/certificates/{created['id']}", headers=owner.auth).json()
    assert untouched["status"] == "active" and untouched["updated_at"] == created["updated_at"]


def test_private_key_is_for_the_owner_only_not_admins(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    owner: Customer = make_customer()
    admin: Customer = make_admin()
    created = issue(owner)
    url = f"/api/certificates/{created['id']}/private-key"
    mine = certs.get(url, headers=owner.auth)
    assert mine.status_code == 200
    assert mine.headers["content-type"].startswith("application/x-pem-file")
    assert mine.headers["cache-control"] == "no-store"
    assert mine.text == created["private_key_pem"]
    # An admin sees the certificate, so a 404 would hide nothing: it is refused outright.
    refused = assert_problem(certs.get(url, headers=admin.auth), 403)
    assert "PRIVATE KEY" not in str(refused)
    # The admin may still read the certificate itself.
    assert certs.get(f"/api/certificates/{created['id']}", headers=admin.auth).status_code == 200


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("bad_id", ["12345", "not-a-uuid", "0" * 33])
def test_bad_uuid_in_path_is_a_4xx_problem(
    certs: Any, make_customer: Any, route: tuple[str, str, Any], bad_id: str
) -> None:
    customer: Customer = make_customer()
    response = call(certs, route, bad_id, customer.auth)
    assert 400 <= response.status_code < 500
    body = assert_problem(response, response.status_code)
    assert "certificate_id" in body["detail"]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_no_token_is_401(
    certs: Any, make_customer: Any, issue: Any, route: tuple[str, str, Any]
) -> None:
    created = issue(make_customer())
    response = call(certs, route, created["id"], {})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


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
def test_forged_or_expired_token_is_401(
    certs: Any, make_customer: Any, issue: Any, var_dir: Path, kind: str
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    token = forged_tokens(customer, var_dir)[kind]
    headers = {"Authorization": f"Bearer {token}"}
    for method, path, body in [
        ("GET", "/api/certificates", None),
        ("POST", "/api/certificates", {"common_name": "forged.example.com"}),
        *[(m, p.format(id=created["id"]), b) for m, p, b in ROUTES],
    ]:
        response = certs.request(method, path, json=body, headers=headers)
        assert_problem(response, 401)
    fetched = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert fetched["status"] == "active"


def test_non_bearer_authorization_is_401(certs: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    basic = {"Authorization": f"Basic {customer.token}"}
    assert_problem(certs.get("/api/certificates", headers=basic), 401)


def test_deleted_accounts_token_is_401(
    certs: Any, accounts: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    assert accounts.delete(f"/api/accounts/{customer.id}", headers=customer.auth).status_code == 204
    assert_problem(certs.get("/api/certificates", headers=customer.auth), 401)
    response = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth)
    assert_problem(response, 401)
    # 401 before the names, key or validity are checked: a valid request and invalid ones alike.
    for body in (
        {"common_name": "a.example.com"},
        {"common_name": "a.example.com", "validity_days": 100_000},
        {"common_name": "a.example.com", "csr": "not a CSR"},
    ):
        assert_problem(certs.post("/api/certificates", json=body, headers=customer.auth), 401)
    patch = certs.patch(
        f"/api/certificates/{created['id']}", json={"is_active": False}, headers=customer.auth
    )
    assert_problem(patch, 401)


def test_unknown_route_and_method_are_problems(certs: Any, make_customer: Any) -> None:
    customer: Customer = make_customer()
    assert_problem(certs.get("/api/certificatez", headers=customer.auth), 404)
    assert_problem(certs.delete(f"/api/certificates/{uuid.uuid4()}", headers=customer.auth), 405)
