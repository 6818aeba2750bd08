"""GET /api/certificates: order, filters, bounds, cursors under inserts, who sees what."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from schema.base import utcnow
from tests.certificate_api.conftest import assert_problem, error_locs
from tests.conftest import Customer


def page(certs: Any, customer: Customer, **query: Any) -> dict[str, Any]:
    response = certs.get("/api/certificates", params=query, headers=customer.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "next_cursor"}
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def test_list_is_newest_first_without_keys(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    issued = [issue(customer)["id"] for _ in range(4)]
    body = page(certs, customer)
    assert ids(body) == issued[::-1] and body["next_cursor"] is None
    assert all("private_key_pem" not in item for item in body["items"])
    created = [item["created_at"] for item in body["items"]]
    assert created == sorted(created, reverse=True)


def test_empty_list_for_a_new_account(certs: Any, make_customer: Any) -> None:
    assert page(certs, make_customer()) == {"items": [], "next_cursor": None}


def test_active_and_status_filters(
    certs: Any, make_customer: Any, issue: Any, set_not_after: Any
) -> None:
    customer: Customer = make_customer()
    active = issue(customer)["id"]
    held = issue(customer, is_active=False)["id"]
    revoked = issue(customer)["id"]
    response = certs.post(
        f"/api/certificates/{revoked}/revoke", json={"reason": "superseded"}, headers=customer.auth
    )
    assert response.status_code == 200
    expired = issue(customer)["id"]
    set_not_after(expired, utcnow() - timedelta(days=1))

    assert ids(page(certs, customer, active="true")) == [active]
    assert set(ids(page(certs, customer, active="false"))) == {held, revoked, expired}
    for status, expected in (
        ("active", active),
        ("inactive", held),
        ("revoked", revoked),
        ("expired", expired),
    ):
        items = page(certs, customer, status=status)["items"]
        assert [item["id"] for item in items] == [expected], status
        assert items[0]["status"] == status
    assert ids(page(certs, customer, active="true", status="expired")) == []


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 1001}, ["query", "limit"]),
        ({"limit": "ten"}, ["query", "limit"]),
        ({"status": "deleted"}, ["query", "status"]),
        ({"active": "perhaps"}, ["query", "active"]),
        ({"account_id": "not-a-uuid"}, ["query", "account_id"]),
    ],
    ids=["limit-0", "limit-1001", "limit-text", "unknown-status", "active-text", "bad-account-id"],
)
def test_bad_query_is_422_naming_the_parameter(
    certs: Any, make_customer: Any, query: dict[str, Any], loc: list[str]
) -> None:
    customer: Customer = make_customer()
    response = certs.get("/api/certificates", params=query, headers=customer.auth)
    assert loc in error_locs(response)


def test_limit_bounds_1_and_1000_are_accepted(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    first, second = issue(customer)["id"], issue(customer)["id"]
    one = page(certs, customer, limit=1)
    assert ids(one) == [second] and one["next_cursor"]
    assert ids(page(certs, customer, limit=1000)) == [second, first]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|not-a-uuid").decode(),
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|00000000-0000-0000-0000-000000000000")
        .decode()
        .rstrip("="),  # a naive time: not one of ours
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        "x" * 201,
    ],
    ids=["not-base64", "bad-uuid", "naive-time", "not-utf8", "too-long"],
)
def test_bad_cursor_is_a_4xx_problem(certs: Any, make_customer: Any, cursor: str) -> None:
    customer: Customer = make_customer()
    response = certs.get("/api/certificates", params={"cursor": cursor}, headers=customer.auth)
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


def test_pages_return_each_certificate_once_while_new_ones_arrive(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    existing = [issue(customer)["id"] for _ in range(8)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            query["cursor"] = cursor
        body = page(certs, customer, **query)
        seen += ids(body)
        pages += 1
        # Newer certificates land in front of the cursor: they must not shift later pages.
        issue(customer)
        issue(customer)
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert pages == 3
    assert len(seen) == len(set(seen))
    assert seen == existing[::-1]


def test_customer_never_sees_another_accounts_certificates(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    alice: Customer = make_customer()
    bob: Customer = make_customer()
    mine = issue(alice)["id"]
    issue(bob)
    assert ids(page(certs, alice)) == [mine]
    # Asking for Bob's list by id does not reveal it either.
    assert ids(page(certs, alice, account_id=bob.id)) == []


def test_admin_sees_every_account_and_filters_by_account_id(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    admin: Customer = make_admin()
    alice: Customer = make_customer()
    bob: Customer = make_customer()
    alice_cert = issue(alice)["id"]
    bob_cert = issue(bob)["id"]
    everything = page(certs, admin, limit=1000)
    assert {alice_cert, bob_cert} <= set(ids(everything))
    assert {item["account_id"] for item in everything["items"]} >= {alice.id, bob.id}
    only_alice = page(certs, admin, account_id=alice.id)
    assert ids(only_alice) == [alice_cert]
    assert ids(page(certs, admin, account_id=bob.id, status="active")) == [bob_cert]


def test_admin_pages_across_accounts_without_duplicates(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    admin: Customer = make_admin()
    customers = [make_customer() for _ in range(3)]
    issued = [issue(customer)["id"] for customer in customers for _ in range(2)]
    collected: list[str] = []
    cursor = None
    while len(collected) < len(issued):
        query: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        body = page(certs, admin, **query)
        collected += ids(body)
        cursor = body["next_cursor"]
        assert cursor is not None
    assert collected[: len(issued)] == issued[::-1]


def test_list_needs_a_token(certs: Any) -> None:
    assert_problem(certs.get("/api/certificates"), 401)
