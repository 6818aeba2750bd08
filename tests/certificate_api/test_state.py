"""Hold, release, revoke, expiry: the status clients see and the history that is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from schema.base import utcnow
from tests.certificate_api.conftest import assert_problem, error_locs
from tests.conftest import Customer


def patch(certs: Any, customer: Customer, cert_id: str, active: Any) -> Any:
    return certs.patch(
        f"/api/certificates/{cert_id}", json={"is_active": active}, headers=customer.auth
    )


def revoke(certs: Any, customer: Customer, cert_id: str, reason: str = "keyCompromise") -> Any:
    return certs.post(
        f"/api/certificates/{cert_id}/revoke", json={"reason": reason}, headers=customer.auth
    )


def test_hold_makes_inactive_and_release_makes_active(
    certs: Any, make_customer: Any, issue: Any, history_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    assert history_rows(created["id"]) == 1  # issued

    held = patch(certs, customer, created["id"], False)
    assert held.status_code == 200
    assert held.json()["is_active"] is False and held.json()["status"] == "inactive"
    assert held.json()["updated_at"] >= created["updated_at"]
    assert history_rows(created["id"]) == 2

    released = patch(certs, customer, created["id"], True)
    assert released.status_code == 200
    assert released.json()["is_active"] is True and released.json()["status"] == "active"
    assert history_rows(created["id"]) == 3
    fetched = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert fetched["status"] == "active"


@pytest.mark.parametrize("active", [True, False], ids=["active-again", "inactive-again"])
def test_setting_the_same_state_is_200_without_history(
    certs: Any,
    make_customer: Any,
    issue: Any,
    history_rows: Callable[[str], int],
    active: bool,
) -> None:
    customer: Customer = make_customer()
    created = issue(customer, is_active=active)
    rows = history_rows(created["id"])
    response = patch(certs, customer, created["id"], active)
    assert response.status_code == 200
    assert response.json()["is_active"] is active
    assert response.json()["updated_at"] == created["updated_at"]
    assert history_rows(created["id"]) == rows


def test_revoked_certificate_cannot_be_activated(
    certs: Any, make_customer: Any, issue: Any, history_rows: Callable[[str], int]
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    assert patch(certs, customer, created["id"], False).status_code == 200
    revoked = revoke(certs, customer, created["id"])
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revocation_reason"] == "keyCompromise"
    rows = history_rows(created["id"])
    assert_problem(patch(certs, customer, created["id"], True), 409)
    assert history_rows(created["id"]) == rows
    fetched = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert fetched["status"] == "revoked" and fetched["is_active"] is False


def test_expired_certificate_cannot_be_activated(
    certs: Any,
    make_customer: Any,
    issue: Any,
    set_not_after: Any,
    history_rows: Callable[[str], int],
) -> None:
    customer: Customer = make_customer()
    created = issue(customer, is_active=False)
    set_not_after(created["id"], utcnow() - timedelta(minutes=1))
    rows = history_rows(created["id"])
    assert_problem(patch(certs, customer, created["id"], True), 409)
    assert history_rows(created["id"]) == rows


def test_status_is_expired_once_not_after_passes_even_if_active(
    certs: Any, make_customer: Any, issue: Any, set_not_after: Any
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    set_not_after(created["id"], utcnow() - timedelta(seconds=1))
    body = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert body["is_active"] is True and body["status"] == "expired"


def test_revocation_beats_expiry_in_the_status(
    certs: Any, make_customer: Any, issue: Any, set_not_after: Any
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    assert revoke(certs, customer, created["id"], "superseded").status_code == 200
    set_not_after(created["id"], utcnow() - timedelta(days=1))
    body = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert body["status"] == "revoked"


def test_revoking_twice_is_409(certs: Any, make_customer: Any, issue: Any) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    assert revoke(certs, customer, created["id"]).status_code == 200
    body = assert_problem(revoke(certs, customer, created["id"], "superseded"), 409)
    assert "revoked" in body["detail"]
    fetched = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert fetched["revocation_reason"] == "keyCompromise"


@pytest.mark.parametrize(
    "reason",
    [
        "unspecified",
        "keyCompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "privilegeWithdrawn",
    ],
)
def test_every_rfc5280_reason_revokes(
    certs: Any, make_customer: Any, issue: Any, reason: str
) -> None:
    customer: Customer = make_customer()
    response = revoke(certs, customer, issue(customer)["id"], reason)
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert response.json()["revocation_reason"] == reason


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"reason": "certificateHold"}, ["body", "reason"]),  # a hold is PATCH, not revoke
        ({"reason": "because"}, ["body", "reason"]),
        ({}, ["body", "reason"]),
        ({"reason": "superseded", "note": "x"}, ["body", "note"]),
    ],
    ids=["certificate-hold", "unknown", "missing", "unknown-field"],
)
def test_bad_revoke_body_is_422(
    certs: Any, make_customer: Any, issue: Any, body: dict[str, Any], loc: list[str]
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    response = certs.post(
        f"/api/certificates/{created['id']}/revoke", json=body, headers=customer.auth
    )
    assert loc in error_locs(response)
    fetched = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert fetched["status"] == "active"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"is_active": "sometimes"}, ["body", "is_active"]),
        ({}, ["body", "is_active"]),
        ({"is_active": False, "status": "revoked"}, ["body", "status"]),
    ],
    ids=["not-a-bool", "missing", "unknown-field"],
)
def test_bad_patch_body_is_422(
    certs: Any, make_customer: Any, issue: Any, body: dict[str, Any], loc: list[str]
) -> None:
    customer: Customer = make_customer()
    created = issue(customer)
    response = certs.patch(f"/api/certificates/{created['id']}", json=body, headers=customer.auth)
    assert loc in error_locs(response)
    fetched = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert fetched["status"] == "active"


def test_admin_may_hold_and_revoke_another_accounts_certificate(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    admin: Customer = make_admin()
    customer: Customer = make_customer()
    created = issue(customer)
    held = patch(certs, admin, created["id"], False)
    assert held.status_code == 200 and held.json()["status"] == "inactive"
    revoked = revoke(certs, admin, created["id"], "privilegeWithdrawn")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    mine = certs.get(f"/api/certificates/{created['id']}", headers=customer.auth).json()
    assert mine["status"] == "revoked" and mine["revocation_reason"] == "privilegeWithdrawn"


def test_deleting_the_account_revokes_its_certificates_and_destroys_keys(
    certs: Any, accounts: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    admin: Customer = make_admin()
    created = [issue(customer)["id"], issue(customer, is_active=False)["id"]]
    assert accounts.delete(f"/api/accounts/{customer.id}", headers=customer.auth).status_code == 204
    for cert_id in created:
        body = certs.get(f"/api/certificates/{cert_id}", headers=admin.auth).json()
        assert body["status"] == "revoked"
        assert body["revocation_reason"] == "cessationOfOperation"
        assert body["has_private_key"] is False
        key = certs.get(f"/api/certificates/{cert_id}/private-key", headers=admin.auth)
        assert_problem(key, 410)
