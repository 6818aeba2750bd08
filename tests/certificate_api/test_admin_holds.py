"""A hold placed by an admin is lifted only by an admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.certificate_api.conftest import assert_problem
from tests.conftest import Customer


def patch(certs: Any, who: Customer, cert_id: str, active: bool) -> Any:
    return certs.patch(f"/api/certificates/{cert_id}", json={"is_active": active}, headers=who.auth)


def test_owner_cannot_lift_an_admins_hold(
    certs: Any,
    make_customer: Any,
    make_admin: Any,
    issue: Any,
    history_rows: Callable[[str], int],
) -> None:
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, admin, cert["id"], False).status_code == 200
    rows = history_rows(cert["id"])

    assert_problem(patch(certs, owner, cert["id"], True), 403)
    fetched = certs.get(f"/api/certificates/{cert['id']}", headers=owner.auth).json()
    assert fetched["is_active"] is False and fetched["status"] == "inactive"
    assert history_rows(cert["id"]) == rows  # nothing written

    released = patch(certs, admin, cert["id"], True)
    assert released.status_code == 200 and released.json()["status"] == "active"


def test_owner_lifts_its_own_hold_and_an_admin_may_too(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, owner, cert["id"], False).status_code == 200
    assert patch(certs, owner, cert["id"], True).status_code == 200
    assert patch(certs, owner, cert["id"], False).status_code == 200
    assert patch(certs, admin, cert["id"], True).status_code == 200


def test_an_admins_hold_is_the_admins_even_after_the_owner_asks_again(
    certs: Any, make_customer: Any, make_admin: Any, issue: Any
) -> None:
    """Setting the state it already has changes nothing: the hold stays the admin's."""
    admin: Customer = make_admin()
    owner: Customer = make_customer()
    cert = issue(owner)
    assert patch(certs, admin, cert["id"], False).status_code == 200
    assert patch(certs, owner, cert["id"], False).status_code == 200
    assert_problem(patch(certs, owner, cert["id"], True), 403)


def test_a_hold_the_owner_placed_at_issuance_is_the_owners(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    owner: Customer = make_customer()
    cert = issue(owner, is_active=False)
    assert patch(certs, owner, cert["id"], True).status_code == 200
