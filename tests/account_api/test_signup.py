"""Sign-up: what is accepted, what is refused, and that refusals change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from schema.accounts import Account
from tests.conftest import unique_email

GOOD = {"password": "long enough pw", "name": "Ada Lovelace"}


def count_accounts(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Account)).scalar_one())


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.json
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_signup_returns_the_account_without_secrets(accounts: Any) -> None:
    email = unique_email()
    response = accounts.post("/api/accounts", json={"email": email, **GOOD})
    assert response.status_code == 201
    body = response.json
    assert set(body) == {"id", "email", "name", "role", "created_at"}
    assert body["email"] == email and body["role"] == "customer" and body["name"] == GOOD["name"]
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 20
    assert response.headers["Location"] == f"/api/accounts/{body['id']}"


def test_duplicate_email_in_another_case_is_409(accounts: Any, engine: Any) -> None:
    email = unique_email()
    assert accounts.post("/api/accounts", json={"email": email, **GOOD}).status_code == 201
    before = count_accounts(engine)
    response = accounts.post("/api/accounts", json={"email": email.upper(), **GOOD})
    assert_problem(response, 409)
    assert count_accounts(engine) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "short"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"password": 12345678}, "password"),
        ({"extra": "field"}, "extra"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    accounts: Any, engine: Any, body: dict[str, Any], field: str
) -> None:
    before = count_accounts(engine)
    payload = {"email": unique_email(), **GOOD, **body}
    problem = assert_problem(accounts.post("/api/accounts", json=payload), 422)
    assert [field] in [err["loc"] for err in problem["errors"]]
    assert all(set(err) == {"loc", "msg"} for err in problem["errors"])
    assert count_accounts(engine) == before


def test_missing_fields_are_422(accounts: Any) -> None:
    problem = assert_problem(accounts.post("/api/accounts", json={}), 422)
    assert sorted(err["loc"][0] for err in problem["errors"]) == ["email", "name", "password"]


def test_rejected_password_is_never_echoed(accounts: Any) -> None:
    secret = "tiny"
    problem = accounts.post(
        "/api/accounts", json={"email": unique_email(), "password": secret, "name": "x"}
    )
    assert problem.status_code == 422
    assert secret not in problem.get_data(as_text=True)


def test_non_json_body_is_415(accounts: Any) -> None:
    response = accounts.post("/api/accounts", data="email=a@b.c", content_type="text/plain")
    assert_problem(response, 415)


def test_malformed_json_is_400(accounts: Any) -> None:
    response = accounts.post("/api/accounts", data='{"email": ', content_type="application/json")
    assert "JSON" in assert_problem(response, 400)["detail"]


def test_json_that_is_not_an_object_is_422(accounts: Any) -> None:
    assert_problem(accounts.post("/api/accounts", json=["a", "b"]), 422)


def test_100_kib_body_is_413(accounts: Any, engine: Any) -> None:
    before = count_accounts(engine)
    payload = {"email": unique_email(), **GOOD, "name": "x" * 100 * 1024}
    assert_problem(accounts.post("/api/accounts", json=payload), 413)
    assert count_accounts(engine) == before


def test_unknown_route_and_method_are_problems(accounts: Any) -> None:
    assert_problem(accounts.get("/api/nothing-here"), 404)
    assert_problem(accounts.put("/api/accounts"), 405)


def test_password_is_stored_as_argon2id(accounts: Any, engine: Any) -> None:
    email = unique_email()
    accounts.post("/api/accounts", json={"email": email, **GOOD})
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM accounts WHERE email = :e"), {"e": email}
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert GOOD["password"] not in stored


@pytest.mark.parametrize("path", ["/api/accounts", "/api/auth/token"])
@pytest.mark.parametrize("depth", [2_000, 30_000])
def test_deeply_nested_json_is_400(accounts: Any, engine: Any, path: str, depth: int) -> None:
    """JSON nested too deeply for the parser is refused like any other body that is not
    JSON, not a 500."""
    before = count_accounts(engine)
    body = '{"email": ' + "[" * depth + "]" * depth + "}"
    response = accounts.post(path, data=body, content_type="application/json")
    assert assert_problem(response, 400)["detail"] == "request body is not valid JSON"
    assert count_accounts(engine) == before


def test_deeply_nested_json_is_400_on_the_certificate_service_too(certs: Any) -> None:
    """The REST routes of the certificate service (FastAPI) answer it 400 as well."""
    body = '{"common_name": ' + "[" * 30_000 + "]" * 30_000 + "}"
    response = certs.post(
        "/api/certificates", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
